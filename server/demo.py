"""A demo county: towns, villages, a user for each role, and realistic notices of every category
in every state. Loaded by `cunping demo`; everything goes through the services, so the audit log
reads as it would in real use."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server import demo_stats
from server.extensions import db
from server.models import Notice, Region, Role, User
from server.models.base import utcnow
from server.services import feedback, notices, regions, users
from server.services.notices import NoticeInput

PASSWORD = "cunping-demo"

# (code, name, children)
TREE = (
    "371399",
    "清源县",
    [
        (
            "371399001",
            "城关街道",
            [
                ("371399001001", "东关社区", []),
                ("371399001002", "西关社区", []),
            ],
        ),
        (
            "371399101",
            "柳河镇",
            [
                ("371399101001", "柳河村", []),
                ("371399101002", "前王庄村", []),
                ("371399101003", "后王庄村", []),
            ],
        ),
        (
            "371399102",
            "石桥镇",
            [
                ("371399102001", "石桥村", []),
                ("371399102002", "南岭村", []),
            ],
        ),
    ],
)

# username, display name, [(role, region code)], description printed by `cunping demo`
USERS = [
    ("admin", "系统管理员", [(Role.ADMIN, "371399")], "system administrator (whole county)"),
    ("county_editor", "县融媒体中心编辑", [(Role.EDITOR, "371399")], "county editor"),
    ("county_reviewer", "县融媒体中心审核", [(Role.REVIEWER, "371399")], "county reviewer"),
    ("liuhe_editor", "柳河镇编辑", [(Role.EDITOR, "371399101")], "town editor, 柳河镇"),
    ("liuhe_reviewer", "柳河镇审核", [(Role.REVIEWER, "371399101")], "town reviewer, 柳河镇"),
    (
        "qianwang_editor",
        "前王庄村村委会",
        [(Role.EDITOR, "371399101002")],
        "village editor, 前王庄村 (village committee)",
    ),
    (
        "qianwang_jiandu",
        "前王庄村务监督委员会",
        [(Role.REVIEWER, "371399101002")],
        "village reviewer, 前王庄村 (supervision committee)",
    ),
    (
        "county_alert",
        "县应急管理局值班员",
        [(Role.ALERT, "371399")],
        "alert issuer (emergency alerts, whole county)",
    ),
    (
        "county_alert2",
        "县应急管理局带班领导",
        [(Role.ALERT, "371399")],
        "second alert issuer (confirms under the two-person rule)",
    ),
]
LOGINS = [(u, d) for u, _n, _g, d in USERS]

FINANCE_BODY = """前王庄村2026年10月财务收支情况公开如下，请村民监督。如有疑问，请在公开之日起10日内向村务监督委员会反映，或扫描屏幕上的二维码留言。

| 项目 | 收入（元） | 支出（元） | 说明 |
| --- | ---: | ---: | --- |
| 上月结余 | 86,420.35 | | |
| 集体土地租赁收入 | 42,000.00 | | 村西50亩，承包人王建军 |
| 上级转移支付 | 30,000.00 | | 村级组织运转经费 |
| 村内道路维修 | | 18,600.00 | 前街300米，经村民代表会议通过 |
| 路灯电费 | | 1,236.80 | 10月份，12盏 |
| 保洁员工资 | | 3,000.00 | 2人 × 1,500元 |
| 办公费用 | | 412.50 | 打印纸、墨盒 |
| **合计** | **158,420.35** | **23,249.30** | 本月结余 **135,171.05** 元 |

**公开时间**：2026年11月5日至12月5日
**监督电话**：0539-0000000（村务监督委员会）"""

SUBSIDY_BODY = """根据县农业农村局通知，2026年耕地地力保护补贴标准为每亩**115.6元**，现将前王庄村补贴发放名单公示如下（身份信息已隐去）：

| 户主 | 确权面积（亩） | 补贴金额（元） |
| --- | ---: | ---: |
| 王*明 | 6.20 | 716.72 |
| 王*华 | 4.85 | 560.66 |
| 李*芬 | 8.10 | 936.36 |
| 张*国 | 3.40 | 393.04 |
| 王*强 | 5.75 | 664.70 |
| **合计** | **28.30** | **3,271.48** |

公示期7天。对名单有异议的，请于公示期内向村委会或镇农业综合服务中心反映。

1. 补贴资金通过"一卡通"直接发放到户；
2. 不得以任何理由截留、挪用补贴资金；
3. 举报电话：12345。"""

MEETING_BODY = """经村"两委"研究，定于**2026年11月28日（星期六）上午9:00**在村委会二楼会议室召开村民代表会议。

**会议议程**：

1. 审议2027年村内道路硬化项目实施方案；
2. 讨论集体土地租赁合同续签事宜；
3. 通报2026年1—10月村级财务收支情况。

请各位村民代表准时参加。因故不能参加的，请提前向村委会请假。"""

PARTY_BODY = """根据《中国共产党党费收缴、使用和管理的规定》，现将前王庄村党支部2026年第三季度党费收缴情况公示如下：

- 应缴党费党员：**32**名
- 实缴党员：**32**名
- 收缴党费合计：**1,968.00**元
- 已于9月30日全额上缴镇党委

党员如对本人缴纳金额有疑问，请与支部书记联系。"""

SERVICE_BODY = """2027年度城乡居民基本医疗保险集中缴费期为**2026年9月1日至12月31日**。

**缴费标准**：每人每年400元。特困人员、低保对象等由政府按规定资助参保。

**缴费方式**：

- 手机"清源融媒"客户端：首页—便民服务—医保缴费；
- 到村便民服务站现场办理（工作日8:30—17:30）；
- 各银行网点代收。

请尚未缴费的村民抓紧办理，以免影响明年看病报销。"""

FIRE_BODY = """冬季天干物燥，风大，是火灾多发季节。请广大村民注意：

1. 不在田间地头焚烧秸秆、垃圾；
2. 冬季取暖使用煤炉要安装烟囱，**谨防一氧化碳中毒**；
3. 不私拉乱接电线，电动车不在楼道、室内充电；
4. 发现火情，立即拨打**119**。

柳河镇人民政府
2026年11月"""


def _build_tree(node: tuple, parent: Region | None = None) -> None:
    code, name, children = node
    region = regions.create(None, code, name, parent)
    for child in children:
        _build_tree(child, region)


def _user(username: str) -> User:
    user = users.by_username(username)
    assert user is not None
    return user


def _notice(
    author: str,
    *,
    title: str,
    body: str,
    category: str,
    targets: list[str],
    days: int = 30,
    pinned: bool = False,
    duration: int = 20,
) -> Notice:
    data = NoticeInput(
        title=title,
        body=body,
        category=category,
        targets=targets,
        expire_at=utcnow() + timedelta(days=days),
        duration_s=duration,
        pinned=pinned,
    )
    return notices.create(_user(author), data)


def _publish(notice: Notice, editor: str, reviewer: str) -> Notice:
    notices.submit(_user(editor), notice)
    notices.approve(_user(reviewer), notice)
    return notices.publish(_user(editor), notice)


def load() -> bool:
    """Create the demo county once. Returns False when there is data already."""
    if db.session.scalar(select(Region).limit(1)) is not None:
        return False
    _build_tree(TREE)
    for username, name, grants, _desc in USERS:
        users.create(
            None,
            username,
            PASSWORD,
            display_name=name,
            grants=[(role, regions.get(code)) for role, code in grants],
        )

    village, town, county = "371399101002", "371399101", "371399"
    finance = _notice(
        "qianwang_editor",
        title="前王庄村2026年10月财务收支公开",
        body=FINANCE_BODY,
        category="finance",
        targets=[village],
        pinned=True,
        duration=30,
    )
    _publish(finance, "qianwang_editor", "qianwang_jiandu")
    subsidy = _notice(
        "qianwang_editor",
        title="2026年耕地地力保护补贴发放名单公示",
        body=SUBSIDY_BODY,
        category="policy",
        targets=[village],
        days=7,
    )
    _publish(subsidy, "qianwang_editor", "qianwang_jiandu")
    meeting = _notice(
        "qianwang_editor",
        title="关于召开村民代表会议的通知",
        body=MEETING_BODY,
        category="village",
        targets=[village],
        days=10,
    )
    _publish(meeting, "qianwang_editor", "qianwang_jiandu")
    party = _notice(
        "liuhe_editor",
        title="第三季度党费收缴情况公示",
        body=PARTY_BODY,
        category="party",
        targets=[village, "371399101001"],
    )
    _publish(party, "liuhe_editor", "liuhe_reviewer")
    service = _notice(
        "county_editor",
        title="2027年度城乡居民医保开始缴费",
        body=SERVICE_BODY,
        category="service",
        targets=[county],
        days=40,
    )
    _publish(service, "county_editor", "county_reviewer")
    fire = _notice(
        "liuhe_editor",
        title="冬季防火安全提示",
        body=FIRE_BODY,
        category="notice",
        targets=[town],
        days=90,
    )
    _publish(fire, "liuhe_editor", "liuhe_reviewer")

    # A published notice with a correction waiting for review (the live one stays on screens).
    notices.update(
        _user("qianwang_editor"),
        meeting,
        NoticeInput(
            title="关于召开村民代表会议的通知（更正：会议地点）",
            body=MEETING_BODY.replace("村委会二楼会议室", "村文化广场（雨天改在村委会二楼）"),
            category="village",
            targets=[village],
            expire_at=meeting.current.expire_at,
            duration_s=20,
        ),
    )
    notices.submit(_user("qianwang_editor"), meeting)

    # One submitted, one draft, one rejected, one withdrawn: every state is on show.
    road = _notice(
        "qianwang_editor",
        title="村内道路硬化项目招标结果公示",
        body="经公开招标，前王庄村2027年道路硬化项目由清源县某建筑公司中标，"
        "中标价**326,500元**。公示期5天。",
        category="village",
        targets=[village],
        days=5,
    )
    notices.submit(_user("qianwang_editor"), road)
    _notice(
        "liuhe_editor",
        title="柳河镇2026年冬季征兵公告（草稿）",
        body="符合条件的适龄青年请到镇武装部报名。",
        category="notice",
        targets=[town],
    )
    low = _notice(
        "qianwang_editor",
        title="2026年低保户名单公示",
        body="名单待补充。",
        category="policy",
        targets=[village],
    )
    notices.submit(_user("qianwang_editor"), low)
    notices.reject(_user("qianwang_jiandu"), low, "名单未附家庭收入核查情况，请补充后重新提交。")
    old = _notice(
        "qianwang_editor",
        title="秋季秸秆禁烧通知",
        body="秋收期间严禁焚烧秸秆。",
        category="notice",
        targets=[village],
    )
    _publish(old, "qianwang_editor", "qianwang_jiandu")
    notices.withdraw(_user("qianwang_editor"), old, "秋收已结束，通知到期撤下。")

    feedback.submit(
        finance,
        body="路灯电费比上个月高了不少，是不是新装了路灯？",
        name="王大爷",
        client_hash="demo-1",
    )
    question = feedback.submit(
        finance, body="道路维修的300米是从哪到哪？", name="村民", client_hash="demo-2"
    )
    feedback.answer(
        _user("qianwang_editor"), question, "从村东桥头到小学门口，共300米，11月底前完工。"
    )
    _demo_alert()
    demo_stats.seed()  # cadence rules, more screens, a month of plays and scans
    return True


def _demo_alert() -> None:
    """One alert for the history, already cancelled: an alert in force would take over the
    demo screen."""
    from server.services import alerts
    from server.services.alerts import AlertInput

    alert = alerts.issue(
        _user("county_alert"),
        AlertInput(
            level=2,
            event="暴雨",
            title="清源县气象台发布暴雨橙色预警信号",
            text="预计未来6小时内柳河镇、石桥镇将出现50毫米以上降雨，局地伴有雷电和短时大风。",
            instruction="远离河道、山塘和低洼地带；危险地带人员及时转移；非必要不外出。",
            sender_name="清源县应急管理局",
            targets=["371399101", "371399102"],
        ),
        confirmed=True,
    )
    alerts.cancel(_user("county_alert2"), alert, "降雨减弱，预警解除。")


def sample_codes() -> list[str]:
    """Codes of published notices, for the printed hint."""
    rows = db.session.scalars(
        select(Notice.code).where(Notice.status == "published").order_by(Notice.id)
    ).all()
    return list(rows)


def demo_screen_token(folder: str) -> str:
    """The demo screen's token, kept in `folder`; the screen is provisioned the first time."""
    import os
    from pathlib import Path

    from server.services import screens

    path = Path(folder) / "demo-screen-token"
    if path.exists():
        token = path.read_text().strip()
        if screens.authenticate(token) is not None:
            return token
    Path(folder).mkdir(parents=True, exist_ok=True)
    _screen, token = screens.provision(None, regions.get("371399101002"), "前王庄村广场屏",
                                       width=1280, height=720)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token
