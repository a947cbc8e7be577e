"""The screens' directory (server/realtime/directory.py): connects, reconciles and heartbeats
answered from memory, and memory that disagrees with the database corrected."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient
from sqlalchemy import update

from player import protocol
from server.extensions import db, socketio
from server.models import Screen
from server.models.base import utcnow
from server.realtime import push
from server.realtime.rooms import INTERNAL
from server.realtime.state import state
from server.services import notices, revisions
from server.services import screens as screen_service
from server.services.notices import NoticeInput
from tests.conftest import World, counting

NS = protocol.NAMESPACE


def connect(app: Flask, token: str, **auth: Any) -> SocketIOTestClient:
    return socketio.test_client(app, namespace=NS,
                                auth={"token": token, "revision": -1, "digest": "", **auth})


def received(client: SocketIOTestClient, name: str) -> list[Any]:
    return [e["args"][0] for e in client.get_received(NS) if e["name"] == name]


def publish(world: World, title: str, target: str = "V11") -> notices.Notice:
    n = notices.create(world.county_editor, NoticeInput(
        title=title, body="正文。", category="notice", targets=[target]))
    notices.submit(world.county_editor, n)
    notices.approve(world.county_reviewer, n)
    return notices.publish(world.county_editor, n)


@pytest.fixture
def serving(app: Flask) -> Iterator[None]:
    """As in a serving process: the directory loaded at start, writes behind."""
    rt = state(app)
    rt.directory.load()
    rt.heartbeats._running = True
    rt.dispatcher._running = True
    yield
    rt.heartbeats._running = False
    rt.dispatcher._running = False


def test_a_known_screen_connects_syncs_and_beats_without_the_database(
    app: Flask, world: World, serving: None
) -> None:
    _screen, token = screen_service.provision(None, world.village, "屏")
    first = connect(app, token)  # the snapshot of its region is read once
    snapshot = received(first, protocol.SNAPSHOT)[0]
    state(app).directory.load()  # as the periodic reload would, with the new screen
    with counting() as sent:
        again = connect(app, token, revision=snapshot["revision"],
                        digest=protocol.digest(snapshot["notices"]))
        assert again.is_connected(NS)
        answer = again.emit(protocol.SYNC, {"revision": snapshot["revision"],
                                            "digest": protocol.digest(snapshot["notices"])},
                            namespace=NS, callback=True)
        beat = again.emit(protocol.HEARTBEAT, {"showing": None, "revision": 1}, namespace=NS,
                          callback=True)
    assert answer["status"] == "current" and beat == {"status": "ok"}
    assert [e["name"] for e in again.get_received(NS)] == [protocol.ALERTS, protocol.WELCOME]
    assert sent == []


def test_a_screen_added_after_the_load_is_read_from_the_database_once(
    app: Flask, world: World, serving: None
) -> None:
    _screen, token = screen_service.provision(None, world.village, "新屏")
    with counting() as sent:
        assert connect(app, token).is_connected(NS)
    assert any("FROM screens" in s for s in sent)
    with counting() as sent:
        assert connect(app, token).is_connected(NS)
    assert not any("FROM screens" in s for s in sent)


def test_a_revoke_or_rename_is_forgotten_at_once_through_the_internal_channel(
    app: Flask, world: World, serving: None
) -> None:
    screen, token = screen_service.provision(None, world.village, "屏")
    state(app).directory.load()
    heard: list[Any] = []
    manager = socketio.server.manager
    receive = manager.on_internal
    manager.on_internal = lambda e, d: (heard.append((e, d)), receive(e, d))
    try:
        screen_service.rename(world.admin, screen, "村委会门口")
        assert heard == [(push.FORGET, {"screen_id": screen.id})]
        client = connect(app, token)
        welcome = received(client, protocol.WELCOME)[0]
        assert welcome["screen"]["name"] == "村委会门口"
        screen_service.revoke(None, screen, "换新屏")
        assert not connect(app, token).is_connected(NS)
    finally:
        manager.on_internal = receive
    assert INTERNAL not in manager.rooms  # nobody ever joins it


def test_a_missed_revoke_or_move_is_corrected_by_the_periodic_reconcile(
    app: Flask, world: World, serving: None
) -> None:
    revoked, revoked_token = screen_service.provision(None, world.village, "撤")
    moved, moved_token = screen_service.provision(None, world.village, "移")
    _kept, kept_token = screen_service.provision(None, world.village, "留")
    rt = state(app)
    rt.directory.load()
    clients = {name: connect(app, t) for name, t in
               (("revoked", revoked_token), ("moved", moved_token), ("kept", kept_token))}
    for client in clients.values():
        client.get_received(NS)
    # Changed behind the realtime layer's back: no signal, no message (a lost invalidation).
    table = Screen.__table__
    db.session.execute(update(table).where(table.c.id == revoked.id).values(revoked_at=utcnow()))
    db.session.execute(update(table).where(table.c.id == moved.id)
                       .values(region_id=world.other_village.id))
    db.session.commit()
    assert connect(app, revoked_token).is_connected(NS)  # memory still vouches for it
    rt.directory.load()
    closed = rt.reconcile()
    assert len(closed) == 3  # the two connections of the revoked screen, the moved one
    assert not clients["revoked"].is_connected(NS) and not clients["moved"].is_connected(NS)
    assert clients["kept"].is_connected(NS)
    assert not connect(app, revoked_token).is_connected(NS)
    back = connect(app, moved_token)
    assert received(back, protocol.WELCOME)[0]["screen"]["region_id"] == world.other_village.id


def test_a_player_ahead_of_this_process_makes_it_read_the_revisions(
    app: Flask, world: World, serving: None
) -> None:
    """A notice committed by another process: its push can reach a player before this process
    reads the revision counter. The player's newer revision makes it read them at once, so the
    answer is never the older snapshot."""
    _screen, token = screen_service.provision(None, world.village, "屏")
    client = connect(app, token)
    client.get_received(NS)
    rt = state(app)
    listeners = push.on_notice_changed
    from server import signals

    signals.notice_changed.disconnect(listeners)  # as if committed by another process
    try:
        notice = publish(world, "另一进程发布")
    finally:
        signals.notice_changed.connect(listeners)
    current = revisions.current()
    assert rt.directory.revision((world.county.id, world.town.id, world.village.id)) < current
    answer = client.emit(protocol.SYNC, {"revision": current, "digest": "x"}, namespace=NS,
                         callback=True)
    assert answer == {"status": "snapshot", "revision": current}
    [snapshot] = received(client, protocol.SNAPSHOT)
    assert notice.code in {n["code"] for n in snapshot["notices"]}


def test_a_connect_that_fails_on_the_servers_side_is_refused_as_busy_and_left_clean(
    app: Flask, world: World, serving: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socketio as python_socketio

    from server.realtime.player_namespace import RETRY_AFTER_ERROR, PlayerNamespace
    from server.services import playlist

    _screen, token = screen_service.provision(None, world.village, "屏")

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("database unavailable")

    monkeypatch.setattr(playlist, "snapshot_at", down)
    rt = state(app)
    namespace = PlayerNamespace(rt)
    with pytest.raises(python_socketio.exceptions.ConnectionRefusedError) as err:
        namespace.on_connect("sid-x", {}, {"token": token, "revision": -1, "digest": ""})
    assert err.value.error_args == {"message": protocol.BUSY,
                                    "data": {"retry_after": RETRY_AFTER_ERROR}}
    assert rt.get("sid-x") is None and "sid-x" not in rt.dispatcher._peers
    from player.client import retry_hint

    assert retry_hint(None, err.value.error_args) == RETRY_AFTER_ERROR


def test_screens_missing_the_same_snapshot_wait_for_one_reading(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from server.services import playlist

    publish(world, "重启后的第一条")
    revision = revisions.current()
    reads: list[Any] = []
    release = threading.Event()
    real = playlist.notice_service.live_for_regions

    def slow(region_ids: Any, now: Any = None) -> Any:
        reads.append(region_ids)
        release.wait(5)
        return real(region_ids, now=now)

    monkeypatch.setattr(playlist.notice_service, "live_for_regions", slow)
    got: list[Any] = []

    def connect_storm() -> None:
        with app.app_context():
            got.append(playlist.snapshot_at(world.village.id, revision))

    threads = [threading.Thread(target=connect_storm) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while not reads and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the other five are waiting by now
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(reads) == 1
    assert len(got) == 6 and all(snap is got[0] for snap in got)


def test_the_screens_of_a_village_are_sent_one_encoding_of_their_snapshot(
    app: Flask, world: World, serving: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server import metrics
    from server.realtime import rooms

    publish(world, "全村的屏一次编码")
    encodings: list[str] = []
    real = rooms.encode

    def counted(server: Any, event: str, data: Any, namespace: str) -> list[Any]:
        encodings.append(event)
        return real(server, event, data, namespace)

    monkeypatch.setattr(rooms, "encode", counted)
    sent_before = metrics.DELIVERIES.labels(event=protocol.SNAPSHOT)._value.get()
    tokens = [screen_service.provision(None, world.village, f"屏{i}")[1] for i in range(3)]
    state(app).directory.load()
    clients = [connect(app, token) for token in tokens]
    snapshots = [received(client, protocol.SNAPSHOT) for client in clients]
    assert encodings == [protocol.SNAPSHOT]
    assert all(len(s) == 1 and s[0] == snapshots[0][0] for s in snapshots)
    assert [n["title"] for n in snapshots[0][0]["notices"]] == ["全村的屏一次编码"]
    assert metrics.DELIVERIES.labels(event=protocol.SNAPSHOT)._value.get() == sent_before + 3
    # A reconcile that finds the screen behind is sent the same encoding.
    answer = clients[0].emit(protocol.SYNC, {"revision": -1, "digest": ""}, namespace=NS,
                             callback=True)
    assert answer["status"] == "snapshot" and encodings == [protocol.SNAPSHOT]
    assert received(clients[0], protocol.SNAPSHOT) == snapshots[0]


def test_a_starting_process_reads_every_screens_region_snapshot_before_connects(
    app: Flask, world: World
) -> None:
    from server.services import playlist

    publish(world, "重启前发布的")
    screen_service.provision(None, world.village, "屏甲")
    screen_service.provision(None, world.village, "屏乙")
    rt = state(app)
    rt.directory.load()
    assert rt.warm() == 1  # two screens, one village
    revision = rt.directory.revision(rt.directory.screen_regions()[world.village.id])
    snap = playlist.cached(app, world.village.id, revision)
    assert snap is not None and [n["title"] for n in snap.notices] == ["重启前发布的"]
