"""Demo statistics: cadence rules for the county, a few more screens, and about a month of
plausible history (proof of play, days the screens were on, residents' scans), so that the
statistics, cadence and dashboard pages have something to show. Called once by server.demo.

The history is made up, deterministically (a fixed random seed): each screen is on most days
from 7:00 to 21:00 and loops the notices aimed at its village, town and county. The demo's
published notices are dated back a few weeks so that their plays start on their publication
day; two older, expired disclosures make some villages late rather than never published.
"""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from server.extensions import db
from server.models import (
    Category,
    Notice,
    NoticeStatus,
    PlayStat,
    ScanEvent,
    Screen,
    ScreenDay,
    User,
)
from server.models.base import utcnow
from server.services import cadence, notices, regions, revisions, screens, users
from server.services.notices import NoticeInput
from server.services.presence import local_day

DAYS = 30
ON_SECONDS = 14 * 3600  # 7:00–21:00
# (village code, name) of the screens added besides the demo player's own 前王庄村广场屏
SCREENS = [
    ("371399101001", "柳河村村委会屏"),
    ("371399101003", "后王庄村文化广场屏"),
    ("371399102001", "石桥村村口屏"),
    ("371399001001", "东关社区服务中心屏"),
]
# How long ago the demo's published notices went live, by category.
PUBLISHED_DAYS_AGO = {"party": 27, "finance": 17, "service": 24, "notice": 20, "village": 9,
                      "policy": 4}


def _user(username: str) -> User:
    user = users.by_username(username)
    assert user is not None
    return user


def _category(key: str) -> Category:
    found = db.session.scalar(select(Category).where(Category.key == key))
    assert found is not None
    return found


def _rules() -> None:
    admin, county = _user("admin"), regions.get("371399")
    cadence.set_rule(admin, county, _category("finance"), cadence.PRESETS["monthly"])
    cadence.set_rule(admin, county, _category("village"), cadence.PRESETS["quarterly"])


def _backdate(now: datetime) -> None:
    for notice in db.session.scalars(select(Notice).where(Notice.status == "published")):
        rev = notice.live_revision
        assert rev is not None
        ago = timedelta(days=PUBLISHED_DAYS_AGO.get(rev.category.key, 10), hours=2)
        notice.published_at = notice.first_published_at = now - ago
    db.session.commit()


def _old_disclosure(editor: str, reviewer: str, village: str, *, title: str, body: str,
                    category: str, days_ago: int, now: datetime) -> None:
    """A disclosure published `days_ago` days ago and expired since (it counts for cadence
    but is no longer on screens)."""
    notice = notices.create(_user(editor), NoticeInput(
        title=title, body=body, category=category, targets=[village],
        expire_at=now + timedelta(days=1), duration_s=20))
    notices.submit(_user(editor), notice)
    notices.approve(_user(reviewer), notice)
    notices.publish(_user(editor), notice)
    went_live = now - timedelta(days=days_ago, hours=3)
    notice.published_at = notice.first_published_at = went_live
    notice.live_revision.expire_at = went_live + timedelta(days=30)  # type: ignore[union-attr]
    notice.status = NoticeStatus.EXPIRED
    notice.ended_at = went_live + timedelta(days=30)
    revisions.bump([r.id for r in notice.live_revision.targets])  # type: ignore[union-attr]
    db.session.commit()


def _screens() -> list[Screen]:
    """The demo player's screen (provisioned now, its token kept where `cunping demo --serve`
    looks for it) and the others (their tokens are not kept: they stay offline)."""
    from server.demo import demo_screen_token

    demo_screen_token(os.path.join(current_app.instance_path, "demo-player"))
    for code, name in SCREENS:
        screens.provision(None, regions.get(code), name)
    return list(db.session.scalars(select(Screen).order_by(Screen.id)))


def _live_on(screen: Screen, now: datetime) -> list[Notice]:
    return notices.live_for_regions(revisions.chain_ids(screen.region), now)


def _history(screen_list: list[Screen], now: datetime, rng: random.Random) -> None:
    today = local_day(now)
    for screen in screen_list:
        # In use since before the month of history (the boot rate counts a screen's days only
        # once it is in use).
        screen.created_at = min(screen.created_at, now - timedelta(days=DAYS + 1))
        playlist = _live_on(screen, now)
        reliability = rng.uniform(0.75, 0.97)
        for age in range(DAYS, 0, -1):
            day = today - timedelta(days=age)
            if rng.random() > reliability:
                continue  # off that day (power cut, switched off)
            on = datetime.combine(day, datetime.min.time()) - timedelta(hours=8) + timedelta(
                hours=7 + rng.uniform(-0.5, 0.5))
            off = on + timedelta(seconds=ON_SECONDS)
            db.session.add(ScreenDay(screen_id=screen.id, day=day, first_seen_at=on,
                                     last_seen_at=off))
            # What the dashboard says of the screen agrees with its history: last heard from
            # when it was last switched off, not "never connected".
            screen.last_seen_at = max(screen.last_seen_at or off, off)
            showing = [n for n in playlist if n.published_at and local_day(n.published_at) <= day]
            loop = sum(n.live_revision.duration_s for n in showing)  # type: ignore[union-attr]
            if not loop:
                continue
            hours_on = rng.uniform(0.8, 1.0)
            for notice in showing:
                duration = notice.live_revision.duration_s  # type: ignore[union-attr]
                count = int(ON_SECONDS * hours_on / loop)
                db.session.add(PlayStat(day=day, notice_id=notice.id, screen_id=screen.id,
                                        plays=count, seconds=count * duration))
                for _scan in range(rng.choice((0, 0, 1, 1, 2, 3, 5))):
                    at = on + timedelta(seconds=rng.uniform(0, ON_SECONDS))
                    db.session.add(ScanEvent(notice_id=notice.id, kind="view",
                                             screen_code=screen.code, at=at))
    db.session.commit()


def seed(now: datetime | None = None) -> None:
    """Add the demo statistics to a freshly loaded demo county."""
    now = now or utcnow()
    rng = random.Random(20261122)
    _rules()
    _backdate(now)
    _old_disclosure("liuhe_editor", "liuhe_reviewer", "371399101001",
                    title="柳河村2026年9月财务收支公开", body="9月份收支明细见村务公开栏。",
                    category="finance", days_ago=45, now=now)
    _old_disclosure("county_editor", "county_reviewer", "371399102002",
                    title="南岭村第二季度村务公开", body="第二季度村务事项公开如下。",
                    category="village", days_ago=100, now=now)
    _history(_screens(), now, rng)
