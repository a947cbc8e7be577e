"""Presence: the boot rate (开机率) from ScreenDay rows, screens that went silent flip offline,
screens offline for long, and what each shows — on both databases."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from player import protocol
from server import signals
from server.extensions import db
from server.models import Screen
from server.models.base import utcnow
from server.scheduler import tick
from server.services import presence
from server.services import screens as screen_service
from server.services.errors import PermissionDenied
from tests.conftest import World
from tests.test_screens import publish

TODAY = date(2026, 11, 22)


def at_local(day: date, hour: int = 12) -> datetime:
    """A naive-UTC moment at `hour` o'clock Shanghai time on `day` (UTC+8)."""
    return datetime(day.year, day.month, day.day, hour) - timedelta(hours=8)


def make(world_region: Any, name: str, created: date, revoked: date | None = None) -> Screen:
    screen, _token = screen_service.provision(None, world_region, name)
    screen.created_at = at_local(created, 9)
    if revoked is not None:
        screen.revoked_at = at_local(revoked, 15)
    db.session.commit()
    return screen


def seen(screen: Screen, *days: date) -> None:
    for day in days:
        presence.seen(screen, at_local(day, 10))


def test_local_day_bounds_are_shanghai_midnights(app: Flask) -> None:
    start, end = presence.day_bounds(TODAY)
    assert start == datetime(2026, 11, 21, 16, 0) and end == datetime(2026, 11, 22, 16, 0)
    # Seen at 23:30 local on the 21st is UTC 15:30 on the 21st; at 00:30 on the 22nd is UTC
    # 16:30 on the 21st: two different local days.
    assert presence.local_day(datetime(2026, 11, 21, 15, 30)) == date(2026, 11, 21)
    assert presence.local_day(datetime(2026, 11, 21, 16, 30)) == TODAY


def test_boot_rate_counts_screens_in_use_each_day_per_town(world: World) -> None:
    d1, d2, d3 = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY
    old = make(world.village, "老屏", TODAY - timedelta(days=40))
    new = make(world.village2, "新屏", d2)  # added on d2 (09:00): in use from d2 on
    gone = make(world.village, "撤屏", TODAY - timedelta(days=40), revoked=d2)  # revoked d2 15:00
    other = make(world.other_village, "南岭屏", TODAY - timedelta(days=40))
    seen(old, d1, d2, d3)
    seen(new, d3)
    seen(gone, d1)  # on d1; silent on d2 before it was revoked
    seen(other, d2)

    rates = presence.boot_rate([world.county], days=3, today=TODAY)
    assert rates.days == [d1, d2, d3]
    assert [g.code for g in rates.groups] == ["T1", "T2"]  # a county user sees towns
    town, other_town = rates.groups
    # d1: old, gone in use (new not yet added); both seen.
    assert rates.cell(town, d1) == presence.Rate(2, 2)
    # d2: old, new (added that day), gone (revoked that afternoon: still in use that day).
    assert rates.cell(town, d2) == presence.Rate(1, 3)
    # d3: gone was revoked before the day began: not counted; old and new seen.
    assert rates.cell(town, d3) == presence.Rate(2, 2)
    assert rates.cell(other_town, d1) == presence.Rate(0, 1)
    assert rates.cell(other_town, d2) == presence.Rate(1, 1)
    assert rates.cell(other_town, d2).percent == 100
    assert rates.totals[d2] == presence.Rate(2, 4) and rates.totals[d2].rate == 0.5
    assert rates.totals[d3] == presence.Rate(2, 3) and rates.totals[d3].percent == 67
    assert rates.group_total(town) == presence.Rate(5, 7)
    assert rates.group_total(other_town) == presence.Rate(1, 3)
    assert rates.overall == presence.Rate(6, 10)


def test_boot_rate_of_a_town_user_is_per_village_and_a_day_without_screens_has_no_rate(
    world: World,
) -> None:
    screen = make(world.village, "老屏", TODAY - timedelta(days=1))
    make(world.other_village, "南岭屏", TODAY - timedelta(days=5))
    seen(screen, TODAY)
    rates = presence.boot_rate(presence.dashboard_roots(world.town_editor), days=3,
                               today=TODAY)
    assert [g.code for g in rates.groups] == ["V11"]  # only its town's screens, by village
    assert rates.totals[TODAY - timedelta(days=2)] == presence.Rate(0, 0)
    assert rates.totals[TODAY - timedelta(days=2)].rate is None
    assert rates.totals[TODAY] == presence.Rate(1, 1)


def test_days_seen_before_a_screen_was_in_use_never_push_a_rate_past_100(world: World) -> None:
    """Back-filled days (the demo's month of history for screens added today) or a wrong
    clock: seen on a day the screen was not in use yet does not count."""
    d1 = TODAY - timedelta(days=2)
    screen = make(world.village, "新屏", TODAY)  # added today
    seen(screen, d1, TODAY)
    rates = presence.boot_rate([world.county], days=3, today=TODAY)
    (town,) = rates.groups
    assert rates.cell(town, d1) == presence.Rate(0, 0) and rates.cell(town, d1).rate is None
    assert rates.group_total(town) == presence.Rate(1, 1)
    assert rates.overall.percent == 100


def test_seen_twice_a_day_is_one_row(world: World) -> None:
    screen = make(world.village, "屏", TODAY - timedelta(days=3))
    presence.seen(screen, at_local(TODAY, 8))
    presence.seen(screen, at_local(TODAY, 20))
    rates = presence.boot_rate([world.county], days=1, today=TODAY)
    assert rates.totals[TODAY] == presence.Rate(1, 1)


def test_dashboard_roots_and_who_may_see_it(world: World) -> None:
    assert [r.code for r in presence.dashboard_roots(world.admin)] == ["C0"]
    assert [r.code for r in presence.dashboard_roots(world.town_editor)] == ["T1"]
    assert [r.code for r in presence.dashboard_roots(world.town_alert)] == ["T1"]
    with pytest.raises(PermissionDenied):
        presence.require_dashboard(world.town_reviewer)
    with pytest.raises(PermissionDenied):
        presence.require_dashboard(world.nobody)


def test_counts_leave_out_revoked_screens(world: World) -> None:
    a = make(world.village, "甲", TODAY)
    b = make(world.village2, "乙", TODAY)
    make(world.village, "丙", TODAY, revoked=TODAY)
    screen_service.record_connect(a, "sid-a")
    counts = presence.counts(presence.screens_under([world.county]))
    assert counts.as_dict() == {"online": 1, "offline": 1, "total": 2}
    assert presence.counts(presence.screens_under([world.other_town])).total == 0
    assert b.id in {s.id for s in presence.screens_under([world.town])}


# --- silent screens ------------------------------------------------------------------------


@pytest.fixture
def announced(app: Flask) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    def listener(sender: Flask, **kw: Any) -> None:
        got.append(kw)

    signals.screen_presence.connect(listener)
    yield got  # type: ignore[misc]
    signals.screen_presence.disconnect(listener)


def test_a_silent_screen_flips_offline_once_and_is_announced(
    app: Flask, world: World, announced: list[dict[str, Any]]
) -> None:
    quiet = make(world.village, "断网屏", TODAY)
    alive = make(world.village2, "在线屏", TODAY)
    screen_service.record_connect(quiet, "sid-quiet")
    screen_service.record_connect(alive, "sid-alive")
    # The quiet screen's process died 2 minutes ago: the database still says online.
    quiet.last_seen_at = utcnow() - timedelta(seconds=protocol.ONLINE_GRACE_SECONDS + 30)
    db.session.commit()
    assert quiet.online and not screen_service.is_online(quiet)

    assert presence.sweep_silent() == [quiet.id]
    db.session.refresh(quiet)
    db.session.refresh(alive)
    assert not quiet.online and quiet.connected_sid is None
    assert alive.online and screen_service.is_online(alive)
    assert announced == [{"screen_id": quiet.id, "code": quiet.code, "online": False,
                          "region_ids": [world.county.id, world.town.id, world.village.id]}]
    # A second pass (or another process) finds nothing more to say.
    assert presence.sweep_silent() == []
    assert len(announced) == 1


def test_the_scheduler_tick_sweeps_silent_screens(
    app: Flask, world: World, announced: list[dict[str, Any]]
) -> None:
    quiet = make(world.village, "断网屏", TODAY)
    screen_service.record_connect(quiet, "sid-quiet")
    quiet.last_seen_at = utcnow() - timedelta(minutes=10)
    db.session.commit()
    tick(app)
    db.session.refresh(quiet)
    assert not quiet.online
    assert [a["screen_id"] for a in announced] == [quiet.id]


# --- offline for long, and what screens show -----------------------------------------------


def test_offline_for_long_lists_silent_and_never_connected_screens(
    app: Flask, world: World
) -> None:
    now = utcnow()
    limit = timedelta(minutes=app.config["OFFLINE_ALERT_MINUTES"])
    long_gone = make(world.village, "久断屏", TODAY)
    long_gone.created_at = now - timedelta(days=10)
    long_gone.last_seen_at = now - limit - timedelta(minutes=5)
    long_gone.last_ip = "10.1.2.3"
    long_gone.state = {"showing": None, "alert": "QX7LM2"}
    just_gone = make(world.village, "刚断屏", TODAY)
    just_gone.created_at = now - timedelta(days=10)
    just_gone.last_seen_at = now - limit + timedelta(minutes=5)
    never = make(world.village2, "未连屏", TODAY)
    never.created_at = now - limit - timedelta(hours=3)
    online = make(world.village2, "在线屏", TODAY)
    online.created_at = now - timedelta(days=10)
    db.session.commit()
    screen_service.record_connect(online, "sid-on")

    rows = presence.offline_for_long(presence.screens_under([world.county]), now)
    assert [r.screen.name for r in rows] == ["未连屏", "久断屏"]  # longest silent first
    never_row, gone_row = rows
    assert never_row.never and never_row.since == never.created_at
    assert not gone_row.never and gone_row.since == long_gone.last_seen_at
    assert gone_row.minutes(now) == app.config["OFFLINE_ALERT_MINUTES"] + 5
    assert gone_row.showing.kind == "alert" and gone_row.showing.code == "QX7LM2"


def test_showing_names_the_notice_or_the_alert_or_standby(world: World) -> None:
    notice = publish(world, [world.village.code])
    a = make(world.village, "甲", TODAY)
    b = make(world.village, "乙", TODAY)
    c = make(world.village, "丙", TODAY)
    screen_service.record_heartbeat(a, {"showing": notice.code})
    screen_service.record_heartbeat(b, {"showing": notice.code, "alert": "NOPE99"})
    shows = presence.showing([a, b, c])
    assert shows[a.id].kind == "notice" and shows[a.id].title == notice.current.title
    assert shows[b.id].kind == "alert" and shows[b.id].alert is None  # an unknown alert code
    assert shows[c.id].kind == "standby"
