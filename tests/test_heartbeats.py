"""Heartbeats written behind (services.heartbeats): held until a pass, then written together."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event, select

from server import signals
from server.extensions import db
from server.models import PairingRequest, Screen, ScreenDay
from server.models.base import utcnow
from server.services import heartbeats, presence
from server.services import screens as screen_service
from tests.conftest import World


@pytest.fixture
def writer(app: Flask) -> Iterator[heartbeats.HeartbeatWriter]:
    w = heartbeats.HeartbeatWriter(app)
    w._running = True  # as in a serving process: passes write, not each heartbeat
    yield w


def fresh(screen: Screen) -> Screen:
    db.session.expire_all()
    found = db.session.get(Screen, screen.id)
    assert found is not None
    return found


def test_heartbeats_wait_for_the_pass_and_are_written_in_two_statements(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    made = [screen_service.provision(None, world.village, f"屏{i}")[0] for i in range(5)]
    for i, screen in enumerate(made):
        screen_service.record_connect(screen, f"sid-{i}")
    later = utcnow() + timedelta(seconds=20)
    for i, screen in enumerate(made):
        writer.note(screen.id, {"showing": f"N{i}"}, f"sid-{i}", later)
    writer.note(made[0].id, {"showing": "newest"}, "sid-0", later)  # the newest one wins
    assert writer.pending() == 5
    assert fresh(made[0]).state == {}  # nothing written yet

    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert writer.flush() == 5
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert [s.split()[0] for s in statements] == ["UPDATE", "INSERT"]
    assert writer.pending() == 0
    assert fresh(made[0]).state == {"showing": "newest"}
    assert [fresh(s).state["showing"] for s in made[1:]] == ["N1", "N2", "N3", "N4"]
    assert all(fresh(s).last_seen_at == later for s in made)
    day = presence.local_day(later)
    rows = db.session.scalars(select(ScreenDay).where(ScreenDay.day == day)).all()
    assert {r.screen_id for r in rows} >= {s.id for s in made}


def test_a_closed_connection_is_not_marked_online_by_its_pending_heartbeat(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    screen_service.record_connect(screen, "sid-old")
    writer.note(screen.id, {"showing": "A"}, "sid-old")
    writer.disconnected(screen.id, "sid-old", screen.code, [1])  # closed before the pass
    assert writer.flush() == 1  # the disconnect; the heartbeat is dropped
    assert not fresh(screen).online and fresh(screen).state != {"showing": "A"}


def test_disconnects_are_written_together_then_announced_unless_a_newer_connection_holds(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    gone, replaced = (screen_service.provision(None, world.village, f"屏{i}")[0]
                      for i in range(2))
    screen_service.record_connect(gone, "sid-1")
    screen_service.record_connect(replaced, "sid-new")  # its old connection closes late
    heard: list[dict[str, object]] = []

    def listener(_sender: object, **kw: object) -> None:
        heard.append(kw)

    signals.screen_presence.connect(listener)
    try:
        writer.disconnected(gone.id, "sid-1", gone.code, [1, 2])
        writer.disconnected(replaced.id, "sid-old", replaced.code, [1, 2])
        assert fresh(gone).online and heard == []  # nothing before the pass
        assert writer.flush() == 2
    finally:
        signals.screen_presence.disconnect(listener)
    assert not fresh(gone).online and fresh(gone).connected_sid is None
    assert fresh(replaced).online and fresh(replaced).connected_sid == "sid-new"
    assert heard == [{"screen_id": gone.id, "code": gone.code, "online": False,
                      "region_ids": [1, 2]}]


def test_a_late_heartbeat_of_an_old_connection_does_not_take_the_screen_from_the_new_one(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    screen_service.record_connect(screen, "sid-new")  # say, on another process
    writer.note(screen.id, {"showing": "OLD"}, "sid-old")
    writer.flush()
    now = fresh(screen)
    assert now.connected_sid == "sid-new" and now.state == {}


def test_revoked_screens_are_not_written_and_a_failed_pass_keeps_its_heartbeats(
    world: World, writer: heartbeats.HeartbeatWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    gone, _token = screen_service.provision(None, world.village, "撤销屏")
    screen_service.record_connect(gone, "sid-gone")
    screen_service.revoke(world.town_editor, gone, "丢失")
    writer.note(gone.id, {"showing": "X"}, "sid-gone")
    writer.flush()
    assert fresh(gone).state == {} and not fresh(gone).online

    def broken(_rows: object) -> None:
        raise RuntimeError("database gone")

    writer.note(screen.id, {"showing": "B"}, "sid-1")
    monkeypatch.setattr(presence, "seen_many", broken)
    with pytest.raises(RuntimeError):
        writer.flush()
    assert writer.pending() == 1  # kept for the next pass
    monkeypatch.undo()
    assert writer.flush() == 1
    assert fresh(screen).state == {"showing": "B"}


def test_without_the_loop_each_heartbeat_is_written_at_once(app: Flask, world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    screen_service.record_connect(screen, "sid-1")
    w = heartbeats.HeartbeatWriter(app)
    w.note(screen.id, {"showing": "NOW"}, "sid-1")
    assert w.pending() == 0 and fresh(screen).state == {"showing": "NOW"}


def test_connects_are_written_together_then_announced(
    app: Flask, world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    made = [screen_service.provision(None, world.village, f"屏{i}")[0] for i in range(3)]
    heard: list[dict[str, object]] = []

    def listener(_sender: object, **kw: object) -> None:
        heard.append(kw)

    signals.screen_presence.connect(listener)
    try:
        for i, screen in enumerate(made):
            writer.connected(screen.id, f"sid-{i}", "10.0.0.9", screen.code, [1, 2, 3])
        assert not fresh(made[0]).online and heard == []  # nothing before the pass
        assert writer.flush() == 3
    finally:
        signals.screen_presence.disconnect(listener)
    for i, screen in enumerate(made):
        now = fresh(screen)
        assert now.online and now.connected_sid == f"sid-{i}" and now.last_ip == "10.0.0.9"
        assert screen_service.is_online(now)
    assert sorted(str(h["code"]) for h in heard) == sorted(s.code for s in made)
    assert all(h["online"] is True and h["region_ids"] == [1, 2, 3] for h in heard)


def test_a_connect_gone_before_the_pass_is_never_written(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    writer.connected(screen.id, "sid-1", None, screen.code, [1])
    writer.disconnected(screen.id, "sid-1", screen.code, [1])  # nothing to undo, nobody told
    assert writer.pending() == 0
    assert writer.flush() == 0 and not fresh(screen).online


def test_a_written_connect_forgets_the_pairing_token(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    request = screen_service.start_pairing("s" * 32, 1920, 1080)
    screen = screen_service.claim_pairing(world.town_editor, request.code, world.village, "配对屏")
    db.session.refresh(request)
    assert request.token is not None  # kept until the player has used it
    writer.connected(screen.id, "sid-1", None, screen.code, [1])
    writer.flush()
    db.session.expire_all()
    assert db.session.get(PairingRequest, request.id).token is None  # type: ignore[union-attr]


def test_a_late_disconnect_of_an_old_connection_keeps_the_new_ones_pending_connect(
    world: World, writer: heartbeats.HeartbeatWriter
) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    writer.connected(screen.id, "sid-new", None, screen.code, [1])
    writer.note(screen.id, {"showing": "NEW"}, "sid-new")
    writer.disconnected(screen.id, "sid-old", screen.code, [1])  # the old one closes late
    assert writer.flush() == 3
    now = fresh(screen)
    assert now.online and now.connected_sid == "sid-new" and now.state == {"showing": "NEW"}
