"""Proof of play: PLAYS batches checked, counted once, summed per local day; purge; and the
real Socket.IO handler."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from player import protocol
from server import scheduler
from server.extensions import db
from server.models import PlayBatch, PlayStat, Screen
from server.models.base import utcnow
from server.services import plays
from server.services import screens as screen_service
from tests.conftest import World
from tests.test_realtime import NS, Player
from tests.test_screens import publish

NOW = datetime(2026, 3, 2, 4, 0, 0)  # 12:00 in Shanghai


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def play(code: str, started: datetime, seconds: int = 20, version: int = 1) -> dict[str, Any]:
    return {"code": code, "version": version, "started_at": iso(started), "seconds": seconds}


def stats() -> list[tuple[date, int, int, int, int]]:
    rows = db.session.execute(
        select(PlayStat.day, PlayStat.notice_id, PlayStat.screen_id, PlayStat.plays,
               PlayStat.seconds).order_by(PlayStat.day, PlayStat.notice_id, PlayStat.screen_id)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


LONG_AGO = datetime(2026, 1, 1)  # the notices here went live then (before NOW and the purges)


def setup(world: World) -> tuple[Screen, Any, Any]:
    screen, _token = screen_service.provision(None, world.village, "村口屏")
    a = publish(world, ["V11"], title="财务公开")
    b = publish(world, ["T1"], title="防火提示")
    for notice in (a, b):
        notice.first_published_at = notice.published_at = LONG_AGO
    db.session.commit()
    return screen, a, b


def test_a_batch_is_summed_per_day_and_notice(app: Flask, world: World) -> None:
    screen, a, b = setup(world)
    batch = {"batch": "b1", "plays": [
        play(a.code, NOW - timedelta(minutes=3), 20),
        play(a.code, NOW - timedelta(minutes=2), 25),
        play(b.code, NOW - timedelta(minutes=1), 10),
    ]}
    assert plays.record(screen, batch, NOW) == {"status": "ok", "accepted": 3, "skipped": 0,
                                                "refused": {}}
    day = date(2026, 3, 2)
    assert stats() == [(day, a.id, screen.id, 2, 45), (day, b.id, screen.id, 1, 10)]
    # A later batch adds to the same rows (the upsert), another screen gets its own.
    other, _t = screen_service.provision(None, world.village, "二号屏")
    assert plays.record(screen, {"batch": "b2", "plays": [play(a.code, NOW, 5)]}, NOW)[
        "accepted"] == 1
    assert plays.record(other, {"batch": "b2", "plays": [play(a.code, NOW, 7)]}, NOW)[
        "accepted"] == 1
    assert stats() == [
        (day, a.id, screen.id, 3, 50), (day, a.id, other.id, 1, 7), (day, b.id, screen.id, 1, 10)
    ]


def test_the_day_is_the_local_day_across_midnight(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    before = datetime(2026, 3, 1, 15, 59, 50)  # 23:59:50 on 1 March in Shanghai
    after = datetime(2026, 3, 1, 16, 0, 0)  # 00:00:00 on 2 March in Shanghai
    ack = plays.record(screen, {"batch": "m", "plays": [
        play(a.code, before, 10), play(a.code, after, 20),
        # the same instant written with an offset instead of Z
        {"code": a.code, "version": 1, "started_at": "2026-03-02T00:00:05+08:00", "seconds": 3},
    ]}, NOW)
    assert ack["accepted"] == 3
    assert stats() == [
        (date(2026, 3, 1), a.id, screen.id, 1, 10), (date(2026, 3, 2), a.id, screen.id, 2, 23)
    ]


def test_a_resent_batch_counts_once(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    batch = {"batch": "same-id", "plays": [play(a.code, NOW, 20)]}
    assert plays.record(screen, batch, NOW)["accepted"] == 1
    assert plays.record(screen, batch, NOW) == {"status": "ok", "accepted": 0, "duplicate": True}
    assert stats()[0][3:] == (1, 20)
    assert db.session.scalar(select(func.count()).select_from(PlayBatch)) == 1


def test_junk_items_and_unknown_codes_are_skipped_and_counted(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    retention = app.config["PLAY_RETENTION_DAYS"]
    junk: list[Any] = [
        "x", None, 5, [], {},
        {**play(a.code, NOW), "seconds": 0},
        {**play(a.code, NOW), "seconds": 86_401},
        {**play(a.code, NOW), "seconds": "20"},
        {**play(a.code, NOW), "seconds": True},
        {**play(a.code, NOW), "version": "1"},
        {**play(a.code, NOW), "code": ""},
        {**play(a.code, NOW), "code": "x" * 17},
        {**play(a.code, NOW), "started_at": "yesterday"},
        {**play(a.code, NOW), "started_at": 1772400000},
        play(a.code, NOW + timedelta(days=2)),  # the far future
        play(a.code, NOW - timedelta(days=retention + 1)),  # older than what is kept
        play("NoSuch", NOW),  # well formed, but no such notice
    ]
    ack = plays.record(screen, {"batch": "j", "plays": [*junk, play(a.code, NOW, 9)]}, NOW)
    assert ack == {"status": "ok", "accepted": 1, "skipped": len(junk), "refused": {
        plays.MALFORMED: 14, plays.FUTURE: 1, plays.TOO_OLD: 1, plays.UNKNOWN: 1}}
    assert stats() == [(date(2026, 3, 2), a.id, screen.id, 1, 9)]


def test_a_malformed_batch_is_refused_and_not_remembered(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    good = [play(a.code, NOW)]
    for data in (None, "x", [], {"plays": good}, {"batch": "", "plays": good},
                 {"batch": "x" * 41, "plays": good}, {"batch": 7, "plays": good},
                 {"batch": "b", "plays": "x"},
                 {"batch": "b", "plays": good * (protocol.MAX_PLAYS + 1)}):
        ack = plays.record(screen, data, NOW)
        assert ack["status"] == "invalid" and ack["reason"], data
    assert stats() == []
    assert db.session.scalar(select(func.count()).select_from(PlayBatch)) == 0
    # The most a batch may carry is accepted.
    ack = plays.record(screen, {"batch": "b", "plays": good * protocol.MAX_PLAYS}, NOW)
    assert ack["accepted"] == protocol.MAX_PLAYS
    assert stats()[0][3:] == (protocol.MAX_PLAYS, 20 * protocol.MAX_PLAYS)


def test_an_empty_batch_is_ok(app: Flask, world: World) -> None:
    screen, _a, _b = setup(world)
    assert plays.record(screen, {"batch": "e", "plays": []}, NOW) == {
        "status": "ok", "accepted": 0, "skipped": 0, "refused": {}}


def test_purge_keeps_the_retention_and_a_week_of_batches(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    now = utcnow()
    for i, age in enumerate((1, 15, 25)):
        plays.record(screen, {"batch": f"p{i}", "plays": [play(a.code, now - timedelta(days=age))]},
                     now)
    app.config["PLAY_RETENTION_DAYS"] = 20
    db.session.execute(
        PlayBatch.__table__.update().where(PlayBatch.batch == "p2")
        .values(received_at=now - timedelta(days=8))
    )
    db.session.commit()
    assert len(stats()) == 3
    assert plays.purge(now) == (1, 1)
    assert len(stats()) == 2
    assert sorted(db.session.scalars(select(PlayBatch.batch))) == ["p0", "p1"]
    assert plays.purge(now) == (0, 0)


def test_the_scheduler_tick_purges(app: Flask, world: World) -> None:
    screen, a, _b = setup(world)
    old = utcnow() - timedelta(days=20)
    plays.record(screen, {"batch": "old", "plays": [play(a.code, old)]}, old)
    assert len(stats()) == 1
    app.config["PLAY_RETENTION_DAYS"] = 10
    scheduler.tick(app)
    assert stats() == []


def test_plays_through_the_socketio_handler(app: Flask, world: World) -> None:
    a = publish(world, ["V11"], title="财务公开")
    player = Player(app, world.village, "村口屏")
    now = utcnow()
    batch = {"batch": "live-1", "plays": [play(a.code, now - timedelta(seconds=40), 20),
                                          play(a.code, now - timedelta(seconds=20), 20),
                                          play("NoSuch", now, 20)]}
    ack = player.client.emit(protocol.PLAYS, batch, namespace=NS, callback=True)
    assert ack == {"status": "ok", "accepted": 2, "skipped": 1,
                   "refused": {plays.UNKNOWN: 1}}
    ack = player.client.emit(protocol.PLAYS, batch, namespace=NS, callback=True)
    assert ack == {"status": "ok", "accepted": 0, "duplicate": True}
    ack = player.client.emit(protocol.PLAYS, "junk", namespace=NS, callback=True)
    assert ack["status"] == "invalid"
    db.session.expire_all()
    assert [r[1:] for r in stats()] == [(a.id, player.screen.id, 2, 40)]
    assert player.client.is_connected(NS)


def test_only_plays_the_screen_could_have_shown_are_counted(app: Flask, world: World) -> None:
    """Any screen token could claim any notice code, for any time and duration: a play is
    believed only for a notice that was live for this screen's regions then, for as long as it
    was live, and neither in the future nor older than the player keeps plays."""
    from prometheus_client import REGISTRY

    screen, a, _b = setup(world)
    elsewhere = publish(world, ["V21"], title="南岭村公告")  # another town's village
    elsewhere.first_published_at = LONG_AGO
    draft_code = "NeverLive"
    withdrawn = publish(world, ["V11"], title="已撤回")
    withdrawn.first_published_at = LONG_AGO
    withdrawn.ended_at = NOW - timedelta(days=1)
    late = publish(world, ["V11"], title="今天才发布")
    late.first_published_at = NOW - timedelta(hours=1)
    db.session.commit()

    def refused(reason: str) -> float:
        return REGISTRY.get_sample_value("cunping_plays_refused_total", {"reason": reason}) or 0

    before = {r: refused(r) for r in (plays.ELSEWHERE, plays.NOT_LIVE, plays.MALFORMED)}
    ack = plays.record(screen, {"batch": "claims", "plays": [
        play(elsewhere.code, NOW - timedelta(hours=1)),  # not this screen's
        play(draft_code, NOW - timedelta(hours=1)),  # no such notice (a draft has no code)
        play(late.code, NOW - timedelta(hours=3)),  # before it went live
        play(withdrawn.code, NOW - timedelta(hours=2)),  # after it was withdrawn
        play(withdrawn.code, NOW - timedelta(days=1, seconds=30), 1200),  # running past the end
        play(a.code, NOW - timedelta(days=protocol.PLAYS_KEEP_DAYS + 1)),  # older than kept
        {"code": a.code, "version": 1, "started_at": "0001-01-01T00:00:00+08:00", "seconds": 5},
        {"code": a.code, "version": 1, "started_at": "9999-12-31T23:59:59-08:00", "seconds": 5},
        play(withdrawn.code, NOW - timedelta(days=2)),  # while it was live: counted
        play(a.code, NOW - timedelta(minutes=5)),  # counted
    ]}, NOW)
    assert ack["accepted"] == 2 and ack["skipped"] == 8
    assert ack["refused"] == {plays.ELSEWHERE: 1, plays.UNKNOWN: 1, plays.NOT_LIVE: 3,
                              plays.TOO_OLD: 1, plays.MALFORMED: 2}
    assert refused(plays.ELSEWHERE) == before[plays.ELSEWHERE] + 1
    assert refused(plays.NOT_LIVE) == before[plays.NOT_LIVE] + 3
    assert refused(plays.MALFORMED) == before[plays.MALFORMED] + 2


def test_a_year_one_date_in_a_batch_is_answered_not_a_crash(app: Flask, world: World) -> None:
    """It crashed the handler without an answer, so the player would resend it forever."""
    a = publish(world, ["V11"], title="财务公开")
    player = Player(app, world.village, "村口屏")
    batch = {"batch": "poison", "plays": [
        {"code": a.code, "version": 1, "started_at": "0001-01-01T00:00:00+08:00", "seconds": 5}]}
    ack = player.client.emit(protocol.PLAYS, batch, namespace=NS, callback=True)
    assert ack == {"status": "ok", "accepted": 0, "skipped": 1,
                   "refused": {plays.MALFORMED: 1}}
    assert player.client.is_connected(NS)
