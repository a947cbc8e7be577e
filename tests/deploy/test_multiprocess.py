"""What several server processes rely on, checked in one process (both databases): the
scheduler's steps claim their work, and a screen whose connection another process holds is
handled through the message queue. tests/deploy/test_scaleout.py shows the same for real."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from player import protocol
from server import signals
from server.extensions import db, socketio
from server.models import Alert, AlertStatus, AuditEvent
from server.models.base import utcnow
from server.realtime.state import state
from server.services import alerts, revisions
from server.services import screens as screen_service
from tests.conftest import World
from tests.test_alerts import data


def _expiries(alert_id: int) -> int:
    return int(db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity == "alert", AuditEvent.entity_id == alert_id,
            AuditEvent.action == "expire")) or 0)


def test_an_alert_another_process_expired_meanwhile_is_not_expired_again(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = alerts.issue(world.county_alert, data())
    alert.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    counter = revisions.current(alerts.COUNTER)
    heard: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        heard.append(kwargs)

    # This process reads the alert as due; before it writes, another process's tick expires
    # it (the same UPDATE, committed first).
    read = db.session.scalars

    def read_then_the_other_process(stmt: Any, *args: Any, **kwargs: Any) -> Any:
        rows = list(read(stmt, *args, **kwargs))
        db.session.execute(update(Alert).where(Alert.id == alert.id)
                           .values(status=AlertStatus.EXPIRED, ended_at=utcnow()))
        return rows

    monkeypatch.setattr(db.session, "scalars", read_then_the_other_process)
    signals.alerts_changed.connect(receiver)
    try:
        assert alerts.expire_due() == []
    finally:
        signals.alerts_changed.disconnect(receiver)
        monkeypatch.undo()
    assert _expiries(alert.id) == 0  # the other process audits it, not this one
    assert heard == []
    assert revisions.current(alerts.COUNTER) == counter

    # Alone, the tick expires a due alert once: one audit entry, one announcement.
    second = alerts.issue(world.county_alert, data(title="第二条预警"))
    second.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert alerts.expire_due() == [second.id]
    assert alerts.expire_due() == []
    assert _expiries(second.id) == 1


def test_moving_a_screen_whose_connection_another_process_holds_closes_it_there(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rooms and the alert dispatcher's record of the screen live in the process holding
    the connection: it is closed through the queue (and the player reconnects there), not
    patched from here."""
    screen, _token = screen_service.provision(None, world.village, "屏")
    screen.online, screen.connected_sid = True, "sid-held-by-another-process"
    db.session.commit()
    server = socketio.server
    assert server is not None
    closed: list[tuple[str, str | None]] = []
    entered: list[str] = []
    monkeypatch.setattr(server, "disconnect",
                        lambda sid, namespace=None, **kw: closed.append((sid, namespace)))
    monkeypatch.setattr(server, "enter_room", lambda sid, room, **kw: entered.append(room))
    sent: list[tuple[str, Any, Any]] = []
    monkeypatch.setattr(socketio, "emit",
                        lambda event, data, to=None, **kw: sent.append((event, data, to)))
    screen_service.move(world.admin, screen, world.other_village)
    assert closed == [("sid-held-by-another-process", protocol.NAMESPACE)]
    assert entered == []
    assert (protocol.REJOIN, {"reason": "moved"}, [f"screen:{screen.id}"]) in sent


def test_moving_a_screen_whose_connect_is_not_written_yet_swaps_its_rooms_here(
    app: Flask, world: World
) -> None:
    """Connects are written behind (services.heartbeats): a move within those seconds finds no
    connection in the database, but this process knows its own connections (the realtime
    state), and moves it at once."""
    screen, token = screen_service.provision(None, world.village, "屏")
    client = socketio.test_client(app, namespace=protocol.NAMESPACE,
                                  auth={"token": token, "revision": -1, "digest": ""})
    assert client.is_connected(protocol.NAMESPACE)
    client.get_received(protocol.NAMESPACE)
    screen.online, screen.connected_sid = False, None  # as if the connect were still pending
    db.session.commit()
    screen_service.move(world.admin, screen, world.other_village)
    got = [(e["name"], e["args"][0]) for e in client.get_received(protocol.NAMESPACE)]
    welcomes = [data for name, data in got if name == protocol.WELCOME]
    assert welcomes and welcomes[-1]["screen"]["region_id"] == world.other_village.id
    assert protocol.SNAPSHOT in [name for name, _data in got]
    server = socketio.server
    [sid] = [c.sid for c in state(app).of_screen(screen.id)]
    rooms = set(server.manager.get_rooms(sid, protocol.NAMESPACE))
    assert f"region:{world.other_village.id}" in rooms
    assert f"region:{world.village.id}" not in rooms
