"""A county's worth of data in PostgreSQL, and how fast the admin answers on it.

Seeds a county (20 towns × 25 villages by default), 10,000 screens with 30+ days of screen-day
history (the boot rate), 100,000 notices in every state (revisions, targets, feedback, scans,
proof of play) and users with roles; then starts a real `cunping serve` on that database and
times the notice list, the overview and the dashboard over HTTP, logged in as the county
administrator and as a town editor (a narrower scope).

    .venv/bin/python bench/bigdata.py                       # a throwaway PostgreSQL (tests/pg.py)
    DATABASE_URL=postgresql+psycopg://… .venv/bin/python bench/bigdata.py --seed-only

Writes bench/results/bigdata-<label>.json and prints the Markdown table for
docs/performance.md. The seeding functions are used by tests/test_query_counts.py on a small
county (Core inserts there; COPY on PostgreSQL here).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Connection, Table, create_engine, insert, text

PASSWORD = "bench-password-1"
TZ = ZoneInfo("Asia/Shanghai")
CODE_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
ROOT = Path(__file__).resolve().parents[1]

TOWN_NAMES = [
    "城关街道", "柳河镇", "石桥镇", "杨庄镇", "马店镇", "清水镇", "黄山镇", "大王庄镇", "北孙乡",
    "南湖乡", "白云镇", "青龙镇", "双河镇", "新集镇", "高庙乡", "古城镇", "李桥镇", "东岗乡",
    "西湾镇", "红星乡", "桃园镇", "丰收乡", "金沟镇", "五里堡乡",
]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
VILLAGE_SUFFIX = ["庄村", "家村", "店村", "营村", "屯村", "河村", "岗村", "湾村", "集村", "寨村"]
SCREEN_SPOTS = ["村委会门口屏", "文化广场屏", "村口屏", "卫生室屏", "小学门口屏", "党群服务中心屏",
                "便民超市屏", "村东头屏", "村西头屏", "老年活动中心屏"]
# category key → title pattern ({place}, {year}, {month}, {n})
TITLES = {
    "party": ["{place}{year}年第{n}季度党费收缴情况公开",
              "{place}党支部{month}月主题党日活动安排", "{place}发展党员公示"],
    "finance": ["{place}{year}年{month}月财务收支公开",
                "{place}{year}年{month}月集体资产租赁收入公开",
                "{place}{year}年村级组织运转经费使用情况"],
    "village": ["{place}{year}年{month}月村务公开", "{place}村民代表会议决议公告",
                "{place}宅基地审批结果公示"],
    "policy": ["{year}年耕地地力保护补贴发放名单（{place}）", "{place}城乡居民医保缴费通知",
               "{place}低保对象公示（{year}年{month}月）"],
    "service": ["{place}便民服务时间调整", "{place}自来水停水通知", "{place}秋冬季防火提示"],
    "notice": ["{place}{month}月村民代表会议通知", "{place}人居环境整治安排",
               "{place}疫苗接种通知"],
}
BODY = (
    "经村“两委”研究，现将有关事项公开如下，请广大村民监督。如有疑问，请在公开之日起10日内"
    "向村务监督委员会反映，或扫描屏幕上的二维码留言。\n\n"
    "| 项目 | 金额（元） | 说明 |\n| --- | ---: | --- |\n"
    "| 集体土地租赁收入 | 42,000.00 | 村西50亩 |\n| 村内道路维修 | 18,600.00 | 前街300米 |\n"
    "| 保洁员工资 | 3,000.00 | 2人 |\n\n**监督电话**：0539-0000000\n"
)
FEEDBACK_BODIES = ["道路维修的钱是按什么标准付的？", "补贴名单里怎么没有我家？",
                   "请问会议几点开始？", "保洁员是怎么选的？", "租赁收入比去年少了，是什么原因？"]


@dataclass
class Sizes:
    towns: int = 20
    villages: int = 25  # per town
    screens: int = 10_000
    notices: int = 100_000
    history_days: int = 35  # screen-day rows (the boot rate shows 30)
    notice_days: int = 1100  # notices were created over about three years
    play_screens: int = 2_000  # screens with proof-of-play rows
    play_days: int = 14
    scans: int = 150_000
    screenshots: int = 100


@dataclass
class Seeded:
    """What the seed made, for the measurement and the report."""

    county_id: int
    town_ids: list[int]
    village_ids: list[int]
    users: dict[str, int]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    screen_ids: list[int] = field(default_factory=list)


# --- seeding -------------------------------------------------------------------------------


def _tables() -> dict[str, Table]:
    from server import models  # noqa: F401  (registers every table on the metadata)
    from server.extensions import db

    return dict(db.metadata.tables)


def _write(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]],
           counts: dict[str, int]) -> None:
    """Insert `rows` (tuples in `columns` order): COPY on PostgreSQL, Core executemany
    elsewhere."""
    n = 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        cols = ", ".join(f'"{c}"' for c in columns)
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
    else:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(columns, row, strict=True)))
            n += 1
            if len(batch) >= 5000:
                conn.execute(insert(table), batch)
                batch = []
        if batch:
            conn.execute(insert(table), batch)
    counts[table.name] = counts.get(table.name, 0) + n


def _code(rng: random.Random, used: set[str], length: int = 6) -> str:
    while True:
        code = "".join(rng.choice(CODE_ALPHABET) for _ in range(length))
        if code not in used:
            used.add(code)
            return code


def _local_midnight_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ).astimezone(UTC).replace(tzinfo=None)


def _notice_status(rng: random.Random, age_days: float) -> str:
    if age_days < 30:
        weights = {"published": 55, "draft": 15, "submitted": 10, "approved": 3, "scheduled": 5,
                   "withdrawn": 2, "expired": 10}
    else:
        weights = {"expired": 88, "published": 6, "withdrawn": 4, "draft": 2}
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def seed(conn: Connection, sizes: Sizes, *, now: datetime | None = None,
         rng_seed: int = 20261122, password_hash: str | None = None, county: int = 0) -> Seeded:
    """Fill a migrated database (categories are there from the migration). Naive-UTC
    timestamps as the application stores them. Deterministic for a given seed.

    `county` > 0 adds another county beside those already there: its ids start at
    county × 1,000,000, its codes and user names differ (c1_admin, …)."""
    started = time.monotonic()
    now = now or datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random(rng_seed + county)
    b = county * 1_000_000  # every id of this county is above b
    who = f"c{county}_" if county else ""
    top = str(371399 - county)
    t = _tables()
    counts: dict[str, int] = {}
    categories = {key: cid for cid, key in conn.execute(text("SELECT id, key FROM categories"))}
    cat_keys = [k for k in TITLES if k in categories] or list(categories)
    if password_hash is None:
        from werkzeug.security import generate_password_hash

        password_hash = generate_password_hash(PASSWORD)

    # Regions: the county, its towns, their villages.
    region_rows: list[tuple[Any, ...]] = []
    names: dict[int, str] = {}
    county_id = b + 1
    region_rows.append((county_id, top, "清源县", None, f"/{county_id}/", 0))
    names[county_id] = "清源县"
    town_ids: list[int] = []
    village_ids: list[int] = []
    town_of: dict[int, int] = {}
    next_id = b + 2
    for ti in range(sizes.towns):
        tid = next_id
        next_id += 1
        tname = TOWN_NAMES[ti % len(TOWN_NAMES)] + ("" if ti < len(TOWN_NAMES) else str(ti))
        region_rows.append((tid, f"{top}{101 + ti:03d}", tname, county_id,
                            f"/{county_id}/{tid}/", 1))
        names[tid] = tname
        town_ids.append(tid)
    for ti, tid in enumerate(town_ids):
        for vi in range(sizes.villages):
            vid = next_id
            next_id += 1
            vname = SURNAMES[(ti * 7 + vi) % len(SURNAMES)] + VILLAGE_SUFFIX[
                (ti + vi * 3) % len(VILLAGE_SUFFIX)]
            if vi >= len(VILLAGE_SUFFIX):
                vname = vname[:-1] + "一二三四五六七八九"[vi % 9] + "村"
            region_rows.append((vid, f"{top}{101 + ti:03d}{vi + 1:03d}", vname, tid,
                                f"/{county_id}/{tid}/{vid}/", 2))
            names[vid] = vname
            village_ids.append(vid)
            town_of[vid] = tid
    _write(conn, t["regions"], ["id", "code", "name", "parent_id", "path", "depth"], region_rows,
           counts)

    # Users and their grants.
    user_rows: list[tuple[Any, ...]] = []
    grant_rows: list[tuple[Any, ...]] = []
    users: dict[str, int] = {}

    def add_user(username: str, display: str, grants: list[tuple[str, int]]) -> int:
        uid = b + len(user_rows) + 1
        username = who + username
        user_rows.append((uid, username, display, password_hash, True, None,
                          now - timedelta(days=400), None))
        for role, region_id in grants:
            grant_rows.append((b + len(grant_rows) + 1, uid, role, region_id))
        users[username] = uid
        return uid

    add_user("admin", "系统管理员", [("admin", county_id)])
    editors_of: dict[int, int] = {
        county_id: add_user("county_editor", "县融媒体中心编辑", [("editor", county_id)])}
    reviewers_of: dict[int, int] = {
        county_id: add_user("county_reviewer", "县融媒体中心审核", [("reviewer", county_id)])}
    add_user("county_alert", "县应急管理局值班员", [("alert", county_id)])
    for ti, tid in enumerate(town_ids):
        editors_of[tid] = add_user(f"town{ti + 1:02d}_editor", f"{names[tid]}编辑",
                                   [("editor", tid)])
        reviewers_of[tid] = add_user(f"town{ti + 1:02d}_reviewer", f"{names[tid]}审核",
                                     [("reviewer", tid)])
    for vid in village_ids:
        editors_of[vid] = add_user(f"v{vid}_editor", f"{names[vid]}村委会", [("editor", vid)])
    _write(conn, t["users"], ["id", "username", "display_name", "password_hash", "active",
                              "locale", "created_at", "last_login_at"], user_rows, counts)
    _write(conn, t["role_grants"], ["id", "user_id", "role", "region_id"], grant_rows, counts)

    # Notices, their revisions and targets.
    used_codes: set[str] = set()
    notice_rows: list[tuple[Any, ...]] = []
    rev_rows: list[tuple[Any, ...]] = []
    target_rows: list[tuple[int, int]] = []
    refs: list[tuple[int, int | None, int | None]] = []  # notice id, live, pending
    live_by_region: dict[int, list[str]] = {}
    public_notices: list[tuple[int, datetime, datetime]] = []  # id, live from, live until
    rev_id = b
    for nid in range(b + 1, b + sizes.notices + 1):
        # Denser towards now: a county posts more each year.
        age = sizes.notice_days * (1 - rng.random() ** 0.8)
        created = now - timedelta(days=age, seconds=rng.randrange(86400))
        status = _notice_status(rng, age)
        roll = rng.random()
        if roll < 0.80:
            targets = [rng.choice(village_ids)]
        elif roll < 0.92:
            targets = [rng.choice(town_ids)]
        elif roll < 0.97:
            town = rng.choice(town_ids)
            villages = [v for v in village_ids if town_of[v] == town]
            targets = sorted(rng.sample(villages, min(len(villages), rng.randint(2, 4))))
        else:
            targets = [county_id]
        scope = targets[0]
        author = editors_of.get(scope) or editors_of[town_of.get(scope, county_id)]
        reviewer = reviewers_of.get(scope) or reviewers_of.get(town_of.get(scope, county_id),
                                                               reviewers_of[county_id])
        cat = rng.choice(cat_keys)
        when = created + timedelta(days=rng.randint(0, 3))
        place = names[scope]
        title = rng.choice(TITLES.get(cat, ["{place}公告"])).format(
            place=place, year=when.year, month=when.month, n=(when.month - 1) // 3 + 1)
        code = _code(rng, used_codes)
        published_at = first_published = ended = None
        live = pending = None
        numbers = 2 if status in ("published", "expired", "withdrawn") and rng.random() < 0.2 else 1
        revs: list[tuple[int, str]] = []  # (id, state)
        submitted_at = created + timedelta(hours=rng.randint(1, 30))
        reviewed_at = submitted_at + timedelta(hours=rng.randint(1, 48))
        for number in range(1, numbers + 1):
            rev_id += 1
            if status in ("published", "expired", "withdrawn"):
                state = "live" if number == numbers else "superseded"
            else:
                state = {"draft": "draft", "submitted": "submitted", "approved": "approved",
                         "scheduled": "scheduled"}[status]
            publish_at = expire_at = None
            if status == "scheduled":
                publish_at = now + timedelta(days=rng.randint(1, 20))
                expire_at = publish_at + timedelta(days=30)
            elif status == "published":
                expire_at = (now + timedelta(days=rng.randint(1, 60))) if rng.random() < 0.7 \
                    else None
            elif status == "expired":
                expire_at = min(created + timedelta(days=rng.randint(7, 60)),
                                now - timedelta(hours=1))
            elif status in ("approved", "submitted", "draft") and rng.random() < 0.5:
                expire_at = now + timedelta(days=30)
            submitted = state != "draft"
            reviewed = state not in ("draft", "submitted")
            rev_rows.append((
                rev_id, nid, number, state, categories[cat],
                title if number == numbers else title + "（原稿）", BODY,
                publish_at, expire_at, rng.choice((15, 20, 20, 30)), rng.random() < 0.03,
                author, created, reviewed_at if reviewed else created,
                author if submitted else None, submitted_at if submitted else None,
                reviewer if reviewed else None, reviewed_at if reviewed else None, "",
            ))
            revs.append((rev_id, state))
            for region_id in targets:
                target_rows.append((rev_id, region_id))
        if status in ("published", "expired", "withdrawn"):
            live = revs[-1][0]
            first_published = reviewed_at
            published_at = reviewed_at
            if status == "expired":
                ended = max(published_at, rev_rows[-1][8])
            elif status == "withdrawn":
                ended = published_at + timedelta(days=rng.randint(1, 10))
                ended = min(ended, now - timedelta(minutes=5))
            public_notices.append((nid, published_at, ended or now))
            if status == "published":
                for region_id in targets:
                    live_by_region.setdefault(region_id, []).append(code)
                # A few live notices have an edit in the works (a pending revision).
                if rng.random() < 0.03:
                    rev_id += 1
                    rev_rows.append((
                        rev_id, nid, numbers + 1, rng.choice(("draft", "submitted")),
                        categories[cat], title + "（修订）", BODY, None, None, 20, False, author,
                        now - timedelta(hours=5), now - timedelta(hours=5), None, None, None,
                        None, ""))
                    pending = rev_id
                    for region_id in targets:
                        target_rows.append((rev_id, region_id))
        else:
            pending = revs[-1][0]
        updated = max(x for x in (created, reviewed_at if status != "draft" else created,
                                  ended or created) if x is not None)
        updated = min(updated, now)
        notice_rows.append((nid, code, status, author, created, updated, None, None,
                            first_published, published_at, ended,
                            "信息有误，已更正后重新发布" if status == "withdrawn" else ""))
        refs.append((nid, live, pending))

    _write(conn, t["notices"], ["id", "code", "status", "created_by_id", "created_at",
                                "updated_at", "live_revision_id", "pending_revision_id",
                                "first_published_at", "published_at", "ended_at",
                                "withdraw_reason"], notice_rows, counts)
    _write(conn, t["revisions"], ["id", "notice_id", "number", "state", "category_id", "title",
                                  "body", "publish_at", "expire_at", "duration_s", "pinned",
                                  "created_by_id", "created_at", "updated_at",
                                  "submitted_by_id", "submitted_at", "reviewed_by_id",
                                  "reviewed_at", "reject_reason"], rev_rows, counts)
    _write(conn, t["revision_targets"], ["revision_id", "region_id"], target_rows, counts)
    # notices ↔ revisions reference each other: point the notices at their revisions now.
    if conn.dialect.name == "postgresql":
        conn.execute(text("CREATE TEMP TABLE bench_refs (id int, live int, pending int) "
                          "ON COMMIT DROP"))
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy("COPY bench_refs (id, live, pending) FROM STDIN") as c:
            for row in refs:
                c.write_row(row)
        conn.execute(text("UPDATE notices SET live_revision_id = r.live, "
                          "pending_revision_id = r.pending FROM bench_refs r "
                          "WHERE notices.id = r.id"))
    else:
        conn.execute(
            text("UPDATE notices SET live_revision_id = :live, pending_revision_id = :pending "
                 "WHERE id = :id"),
            [{"id": i, "live": live_id, "pending": pending_id} for i, live_id, pending_id in refs],
        )

    # Screens: 20 a village by default; most on now, some off a while, a few never connected
    # or revoked; a few added during the boot-rate period.
    screen_rows: list[tuple[Any, ...]] = []
    screen_meta: list[tuple[int, datetime, datetime | None, datetime | None, float]] = []
    per_village = max(sizes.screens // max(len(village_ids), 1), 1)
    screen_ids: list[int] = []
    sid = b
    today = now.replace(tzinfo=UTC).astimezone(TZ).date()
    for vi, vid in enumerate(village_ids):
        extra = 1 if vi < sizes.screens - per_village * len(village_ids) else 0
        chain = [county_id, town_of[vid], vid]
        showable = [c for r in chain for c in live_by_region.get(r, [])]
        for n in range(per_village + extra):
            sid += 1
            if sid > b + sizes.screens:
                break
            roll = rng.random()
            created = now - timedelta(days=rng.randint(40, 700))
            if roll < 0.06:
                created = now - timedelta(days=rng.uniform(0.5, 29))
            revoked = None
            if rng.random() < 0.01:
                revoked = now - timedelta(days=rng.uniform(1, 25))
                revoked = max(revoked, created + timedelta(hours=1))
            reliability = rng.uniform(0.55, 0.995)
            state_roll = rng.random()
            online = False
            last_seen: datetime | None
            if revoked is not None:
                last_seen = revoked - timedelta(minutes=5)
            elif state_roll < 0.85:
                online, last_seen = True, now
            elif state_roll < 0.90:
                last_seen = now - timedelta(minutes=rng.randint(3, 100))
            elif state_roll < 0.995:
                last_seen = now - timedelta(hours=rng.uniform(2.5, 24 * 20))
            else:
                last_seen = None
            if last_seen is not None and last_seen < created:
                last_seen = created + timedelta(minutes=1)
            state: dict[str, Any] = {}
            if last_seen is not None:
                state = {"showing": rng.choice(showable) if showable and rng.random() < 0.9
                         else None, "revision": rng.randint(1000, 5000), "digest": "",
                         "version": "0.1.0", "uptime_s": rng.randint(60, 900_000)}
            spot = SCREEN_SPOTS[n % len(SCREEN_SPOTS)] + ("" if n < len(SCREEN_SPOTS)
                                                          else str(n // len(SCREEN_SPOTS) + 1))
            token_hash = hashlib.sha256(f"bench-screen-{sid}".encode()).hexdigest()  # unique
            screen_rows.append((
                sid, f"S{sid:07d}", names[vid] + spot, vid, token_hash, token_hash[:8], revoked,
                1920, 1080, "landscape", created, last_seen,
                f"10.{vid % 250}.{n}.{sid % 250}" if last_seen else None, online,
                f"bench{sid}" if online else None, json.dumps(state, ensure_ascii=False),
            ))
            screen_meta.append((sid, created, revoked, last_seen, reliability))
            screen_ids.append(sid)
    _write(conn, t["screens"], ["id", "code", "name", "region_id", "token_hash", "token_prefix",
                                "revoked_at", "width", "height", "orientation", "created_at",
                                "last_seen_at", "last_ip", "online", "connected_sid", "state"],
           screen_rows, counts)

    def screen_days() -> Iterable[tuple[Any, ...]]:
        for screen_id, created, revoked, last_seen, reliability in screen_meta:
            if last_seen is None:
                continue
            for back in range(sizes.history_days - 1, -1, -1):
                day = today - timedelta(days=back)
                start = _local_midnight_utc(day)
                end = start + timedelta(days=1)
                if created >= end or (revoked is not None and revoked < start):
                    continue
                if last_seen < start:
                    continue  # silent since before that day
                if day != today and rng.random() > reliability:
                    continue
                first = max(start + timedelta(hours=7, minutes=rng.randint(0, 50)), created)
                last = min(start + timedelta(hours=21), last_seen, now)
                if last < first:
                    last = first
                yield (screen_id, day, first, last)

    _write(conn, t["screen_days"], ["screen_id", "day", "first_seen_at", "last_seen_at"],
           screen_days(), counts)

    # Residents: feedback on some notices, scans of many, proof of play on some screens.
    feedback_rows: list[tuple[Any, ...]] = []
    for nid, start, end in public_notices:
        if rng.random() < 0.05:
            for _ in range(rng.randint(1, 3)):
                at = start + (end - start) * rng.random()
                status = "open" if at > now - timedelta(days=10) and rng.random() < 0.5 else \
                    rng.choice(("answered", "answered", "hidden"))
                answered = status == "answered"
                feedback_rows.append((
                    b + len(feedback_rows) + 1, nid, at, rng.choice(("", "王大爷", "李女士")),
                    "", rng.choice(FEEDBACK_BODIES), None,
                    hashlib.sha256(str(rng.random()).encode()).hexdigest(), status,
                    "已核实，详见村务公开栏。" if answered else "",
                    editors_of[county_id] if answered else None,
                    at + timedelta(days=1) if answered else None,
                ))
    _write(conn, t["feedback"], ["id", "notice_id", "created_at", "name", "contact", "body",
                                 "screen_code", "client_hash", "status", "answer",
                                 "answered_by_id", "answered_at"], feedback_rows, counts)

    def scans() -> Iterable[tuple[Any, ...]]:
        if not public_notices:
            return
        for i in range(b + 1, b + sizes.scans + 1):
            nid, start, end = public_notices[int(len(public_notices) * rng.random() ** 0.5)]
            at = start + (end - start) * rng.random()
            kind = rng.choices(("view", "app_open", "app_download"), (90, 7, 3))[0]
            code = f"S{b + rng.randint(1, max(sizes.screens, 1)):07d}" \
                if rng.random() < 0.8 else None
            yield (i, nid, kind, code, at)

    _write(conn, t["scan_events"], ["id", "notice_id", "kind", "screen_code", "at"], scans(),
           counts)

    code_to_id = {row[1]: row[0] for row in notice_rows}

    def plays() -> Iterable[tuple[Any, ...]]:
        pid = b
        for screen_id, _created, _revoked, _seen, _rel in screen_meta[: sizes.play_screens]:
            row = screen_rows[screen_id - b - 1]
            vid = row[3]
            chain = [county_id, town_of[vid], vid]
            codes = [c for r in chain for c in live_by_region.get(r, [])][:6]
            for back in range(sizes.play_days):
                day = today - timedelta(days=back)
                for c in codes:
                    pid += 1
                    n_plays = rng.randint(20, 160)
                    yield (pid, day, code_to_id[c], screen_id, n_plays, n_plays * 20)

    _write(conn, t["play_stats"], ["id", "day", "notice_id", "screen_id", "plays", "seconds"],
           plays(), counts)

    jpeg = _tiny_jpeg()
    shots = [(b + i + 1, screen_ids[(i * 97) % len(screen_ids)], f"bench-shot-{b + i}",
              now - timedelta(hours=i), None, now - timedelta(hours=i) + timedelta(seconds=3),
              None, 320, 180, jpeg) for i in range(min(sizes.screenshots, len(screen_ids)))]
    _write(conn, t["screenshots"], ["id", "screen_id", "request", "requested_at",
                                    "requested_by_id", "taken_at", "showing", "width", "height",
                                    "image"], shots, counts)

    if conn.dialect.name == "postgresql":
        for table, column in (("regions", "id"), ("users", "id"), ("role_grants", "id"),
                              ("notices", "id"), ("revisions", "id"), ("screens", "id"),
                              ("feedback", "id"), ("scan_events", "id"), ("play_stats", "id"),
                              ("screenshots", "id")):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                              f"(SELECT coalesce(max({column}), 1) FROM {table}))"))
    return Seeded(county_id=county_id, town_ids=town_ids, village_ids=village_ids, users=users,
                  rows=counts, seconds=time.monotonic() - started, screen_ids=screen_ids)


def _tiny_jpeg() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (320, 180), (183, 28, 28)).save(out, "JPEG", quality=70)
    return out.getvalue()


# --- measuring over HTTP -------------------------------------------------------------------


class Browser:
    """A logged-in admin user (cookies by hand), a new connection per request as nginx's
    upstream without keepalive would make: over a kept-alive connection `cunping serve`'s
    gevent server (no TCP_NODELAY) and the client's delayed ACK add ~40 ms to every response
    after the first, which is TCP, not the application."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        self.conn.close()
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Accept-Language": "zh-CN"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        for header in resp.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for key, morsel in jar.items():
                self.cookies[key] = morsel.value
        return resp.status, data

    def login(self, username: str, password: str = PASSWORD) -> None:
        status, page = self.request("GET", "/admin/login")
        match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert match, f"no CSRF token on the login page ({status})"
        status, _ = self.request("POST", "/admin/login", urlencode({
            "csrf_token": match.group(1).decode(), "username": username,
            "password": password}))
        assert status == 302, f"login as {username} failed: {status}"


@dataclass
class Timing:
    who: str
    name: str
    path: str
    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    bytes: int


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(browser: Browser, who: str, name: str, path: str, n: int, warmup: int) -> Timing:
    times: list[float] = []
    size = 0
    for i in range(warmup + n):
        t0 = time.perf_counter()
        status, body = browser.request("GET", path)
        elapsed = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise RuntimeError(f"{who} GET {path}: HTTP {status}\n{body[:500]!r}")
        if i >= warmup:
            times.append(elapsed)
        size = len(body)
    timing = Timing(who, name, path, n, round(statistics.median(times), 1),
                    round(percentile(times, 0.95), 1), round(max(times), 1), size)
    print(f"  {who:<12} {name:<34} p50 {timing.p50_ms:7.1f}  p95 {timing.p95_ms:7.1f}  "
          f"max {timing.max_ms:7.1f} ms  {size // 1024} KB", file=sys.stderr)
    return timing


def scenarios(conn: Connection) -> list[tuple[str, str, str]]:
    """(who, name, path) for the county administrator and a town editor (of the second town)."""
    town = conn.execute(text("SELECT id FROM regions WHERE depth = 1 ORDER BY id LIMIT 1 OFFSET 1")
                        ).scalar_one()
    village = conn.execute(text("SELECT id FROM regions WHERE parent_id = :t ORDER BY id "
                                "LIMIT 1 OFFSET 3"), {"t": town}).scalar_one()
    village_name = conn.execute(text("SELECT name FROM regions WHERE id = :i"),
                                {"i": village}).scalar_one()
    code = conn.execute(text("SELECT code FROM notices ORDER BY id DESC LIMIT 1")).scalar_one()
    screen = conn.execute(text("SELECT s.id FROM screens s "
                               "JOIN screenshots x ON x.screen_id = s.id "
                               "JOIN regions r ON r.id = s.region_id "
                               "WHERE r.path LIKE :p ORDER BY s.id LIMIT 1"),
                          {"p": f"/1/{town}/%"}).scalar_one()
    total = conn.execute(text("SELECT count(*) FROM notices")).scalar_one()
    last_page = max((total + 29) // 30, 1)
    admin = [
        ("overview", "/admin/"),
        ("notice list", "/admin/notices"),
        ("notice list page 100", "/admin/notices?page=100"),
        ("notice list last page", f"/admin/notices?page={last_page}"),
        ("notice list status=published", "/admin/notices?status=published"),
        ("notice list status=expired p50", "/admin/notices?status=expired&page=50"),
        ("notice list awaiting review", "/admin/notices?status=pending_review"),
        ("notice list category=finance", "/admin/notices?category=finance"),
        ("notice list region=town", f"/admin/notices?region={town}"),
        ("notice list region=village", f"/admin/notices?region={village}"),
        ("notice list search village", "/admin/notices?" + urlencode({"q": village_name})),
        ("notice list search code", "/admin/notices?" + urlencode({"q": code})),
        ("notice list combined", "/admin/notices?" + urlencode(
            {"status": "expired", "category": "finance", "region": town})),
        ("review queue", "/admin/review"),
        ("dashboard", "/admin/dashboard"),
        ("dashboard counts.json", "/admin/dashboard/counts.json"),
        ("dashboard one screen", f"/admin/dashboard/screens/{screen}"),
        ("dashboard screenshot.json", f"/admin/dashboard/screens/{screen}/screenshot.json"),
    ]
    editor = [
        ("overview", "/admin/"),
        ("notice list", "/admin/notices"),
        ("notice list page 20", "/admin/notices?page=20"),
        ("notice list status=published", "/admin/notices?status=published"),
        ("notice list search village", "/admin/notices?" + urlencode({"q": village_name})),
        ("dashboard", "/admin/dashboard"),
        ("dashboard counts.json", "/admin/dashboard/counts.json"),
    ]
    return ([("admin", n, p) for n, p in admin]
            + [("town02_editor", n, p) for n, p in editor])


def heartbeat_keeper(url: str, stop: threading.Event, every: float = 2.0,
                     slices: int = 10) -> None:
    """Keep the seeded online screens online (as their heartbeats would: a tenth of them
    every 2 s), so the scheduler's silent-screen sweep does not flip 8,500 screens offline
    in the middle of the run."""
    engine = create_engine(url)
    try:
        turn = 0
        while not stop.wait(every):
            with engine.begin() as conn:
                conn.execute(text("UPDATE screens SET last_seen_at = :now "
                                  "WHERE online AND id % :n = :k"),
                             {"now": datetime.now(UTC).replace(tzinfo=None), "n": slices,
                              "k": turn % slices})
            turn += 1
    finally:
        engine.dispose()


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| who | page | p50 ms | p95 ms | max ms | target p95 |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result["timings"]:
        mark = "✓" if row["p95_ms"] <= 200 else "✗"
        lines.append(f"| {row['who']} | {row['name']} | {row['p50_ms']:.0f} | "
                     f"{row['p95_ms']:.0f} | {row['max_ms']:.0f} | ≤ 200 {mark} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notices", type=int, default=Sizes.notices)
    parser.add_argument("--screens", type=int, default=Sizes.screens)
    parser.add_argument("--towns", type=int, default=Sizes.towns)
    parser.add_argument("--villages", type=int, default=Sizes.villages)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--label", default=date.today().isoformat())
    parser.add_argument("--seed-only", action="store_true")
    parser.add_argument("--only", default="", help="measure only pages whose name contains this")
    parser.add_argument("--serve", choices=("gunicorn", "cunping"), default="gunicorn",
                        help="gunicorn with deploy/gunicorn.conf.py (production), or "
                             "`cunping serve`")
    args = parser.parse_args()
    sizes = Sizes(towns=args.towns, villages=args.villages, screens=args.screens,
                  notices=args.notices)

    from tests.live import LiveServer

    pg = None
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        from tests.pg import PostgresServer

        print("starting PostgreSQL…", file=sys.stderr)
        pg = PostgresServer.start()
        url = pg.fresh_database()
    folder = Path(tempfile.mkdtemp(prefix="cunping-bigdata-"))
    stop = threading.Event()
    server: LiveServer | None = None
    try:
        server = LiveServer.create(folder, demo=False, extra_env={
            "DATABASE_URL": url, "SECRET_KEY": "bench-" + "k" * 40,
            "CUNPING_LOGIN_RATE_LIMIT": "1000 per minute", "CUNPING_LOG_LEVEL": "WARNING"})
        engine = create_engine(url)
        with engine.connect() as conn:
            existing = conn.execute(text("SELECT count(*) FROM notices")).scalar_one()
        rows: dict[str, int] = {}
        seed_seconds = 0.0
        if existing:
            print(f"the database has {existing} notices already: measuring it as it is",
                  file=sys.stderr)
            with engine.connect() as conn:
                for table in ("regions", "users", "notices", "revisions", "revision_targets",
                              "screens", "screen_days", "feedback", "scan_events", "play_stats",
                              "screenshots"):
                    rows[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        else:
            print(f"seeding {sizes}…", file=sys.stderr)
            with engine.begin() as conn:
                seeded = seed(conn, sizes)
            rows, seed_seconds = seeded.rows, seeded.seconds
            print(f"seeded in {seed_seconds:.0f} s: {rows}", file=sys.stderr)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        if args.seed_only:
            print(url)
            return
        # All online screens heard from now, then the table vacuumed: measure the steady
        # state, not autovacuum catching up with 8,500 updated rows.
        with engine.begin() as conn:
            conn.execute(text("UPDATE screens SET last_seen_at = :now WHERE online"),
                         {"now": datetime.now(UTC).replace(tzinfo=None)})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE screens"))
        keeper = threading.Thread(target=heartbeat_keeper, args=(url, stop), daemon=True)
        keeper.start()
        if args.serve == "gunicorn":
            server.args = [str(Path(sys.executable).parent / "gunicorn"), "-c",
                           str(ROOT / "deploy" / "gunicorn.conf.py")]
            server.env = {**server.env, "CUNPING_PORT": str(server.port)}
        server.start()
        with engine.connect() as conn:
            plan = scenarios(conn)
            version = conn.execute(text("SHOW server_version")).scalar_one()
        browsers: dict[str, Browser] = {}
        timings = []
        for who, name, path in plan:
            if args.only and args.only not in name:
                continue
            if who not in browsers:
                browsers[who] = Browser(server.url)
                browsers[who].login(who)
            timings.append(measure(browsers[who], who, name, path, args.requests, args.warmup))
        result = {
            "label": args.label,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(), "postgresql": version},
            "command": "python bench/bigdata.py " + " ".join(sys.argv[1:]),
            "sizes": asdict(sizes),
            "rows": rows,
            "seed_seconds": round(seed_seconds, 1),
            "requests": args.requests,
            "warmup": args.warmup,
            "server": ("gunicorn -c deploy/gunicorn.conf.py (one gevent worker)"
                       if args.serve == "gunicorn" else "cunping serve (one gevent process)"),
            "timings": [asdict(t) for t in timings],
        }
        out = ROOT / "bench" / "results" / f"bigdata-{args.label}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
        print(markdown(result))
        print(f"\nwrote {out.relative_to(ROOT)}", file=sys.stderr)
        engine.dispose()
    finally:
        stop.set()
        if server is not None:
            server.stop()
            if server.log.exists() and "Traceback" in server.log.read_text(errors="replace"):
                print("server log has tracebacks:\n" + server.log_tail(40), file=sys.stderr)
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
