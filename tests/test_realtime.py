"""The players' Socket.IO namespace, with Flask-SocketIO's test client, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from player import protocol
from server.extensions import db, socketio
from server.models import Screen
from server.models.base import utcnow
from server.services import notices, playlist, revisions
from server.services import screens as screen_service
from server.services.notices import NoticeInput
from tests.conftest import World
from tests.test_screens import publish

NS = protocol.NAMESPACE
SECRET = "pairing-secret-abcdefghijkl"


def connect(app: Flask, auth: dict[str, Any] | None) -> SocketIOTestClient:
    return socketio.test_client(app, namespace=NS, auth=auth)


def events(client: SocketIOTestClient, name: str | None = None) -> list[Any]:
    received = client.get_received(NS)
    return [e["args"][0] for e in received if name is None or e["name"] == name]


def names(client: SocketIOTestClient) -> list[tuple[str, Any]]:
    return [(e["name"], e["args"][0]) for e in client.get_received(NS)]


class Player:
    """A screen and its connected test client."""

    def __init__(self, app: Flask, region: Any, name: str) -> None:
        self.screen, self.token = screen_service.provision(None, region, name)
        self.client = connect(app, {"token": self.token, "revision": 0, "digest": ""})
        assert self.client.is_connected(NS)
        received = names(self.client)
        # The alert set always comes first (empty here), then WELCOME and the snapshot.
        assert received[0] == (protocol.ALERTS, {"alerts": [], "server_time": ANY})
        self.first = received[1:]

    def deltas(self) -> list[dict[str, Any]]:
        found = events(self.client, protocol.NOTICE)
        for delta in found:
            protocol.check_delta(delta)
        return found


def test_a_bad_token_is_refused(app: Flask, world: World) -> None:
    for auth in (None, {}, {"token": "cps_nope"}, {"token": 12}):
        client = connect(app, auth)
        assert not client.is_connected(NS)
    screen, token = screen_service.provision(None, world.village, "屏")
    screen_service.revoke(None, screen)
    assert not connect(app, {"token": token}).is_connected(NS)


def test_the_refusal_names_the_reason(app: Flask, world: World) -> None:
    import socketio

    from server.realtime.player_namespace import REFUSED_REVOKED, REFUSED_TOKEN, PlayerNamespace
    from server.realtime.state import state

    namespace = PlayerNamespace(state(app))
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as err:
        namespace.on_connect("sid1", {}, {"token": "cps_nope"})
    assert err.value.error_args == {"message": REFUSED_TOKEN}
    screen, token = screen_service.provision(None, world.village, "屏")
    assert connect(app, {"token": token}).is_connected(NS)  # known to the directory now
    screen_service.revoke(None, screen)
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as err:
        namespace.on_connect("sid2", {}, {"token": token})
    assert err.value.error_args == {"message": REFUSED_REVOKED}


def test_a_saturated_process_refuses_handshakes_before_socketio_with_a_retry_after(
    app: Flask, world: World
) -> None:
    from server.realtime.state import state

    gate = state(app).gate
    gate.rate, gate.burst, gate._tokens = 10.0, 2.0, 2.0
    busy_before = metric("cunping_screen_connections_busy_total")
    http = app.test_client()
    answers = [http.get("/socket.io/?EIO=4&transport=polling") for _ in range(6)]
    assert [a.status_code for a in answers[:2]] == [200, 200]  # the burst: handshakes made
    refused = answers[2:]
    assert [a.status_code for a in refused] == [503] * 4
    # Consecutive slots of the admitted rate (10/s), never less than a second.
    waits = [int(a.headers["Retry-After"]) for a in refused]
    assert waits == sorted(waits) and waits[0] >= 1
    ticket = refused[0].headers[protocol.TICKET_HEADER]
    assert refused[0].get_json() == {"message": protocol.BUSY, "retry_after": waits[0],
                                     "ticket": ticket}
    assert "sid=" not in refused[0].get_data(as_text=True)  # no Engine.IO session was made
    assert metric("cunping_screen_connections_busy_total") == busy_before + 4
    # Requests of a session already made, and every other page, are not gated.
    assert http.get("/healthz").status_code == 200
    gate.lag = 5.0  # the event loop is late: handshakes wait even with tokens to spare
    gate._tokens = 2.0
    assert http.get("/socket.io/?EIO=4&transport=polling").status_code == 503
    gate.lag = 0.0
    assert http.get("/socket.io/?EIO=4&transport=polling").status_code == 200


def metric(name: str) -> float:
    from prometheus_client import REGISTRY

    return float(REGISTRY.get_sample_value(name) or 0.0)


def test_connect_with_revision_0_gets_the_snapshot_of_its_region_chain(
    app: Flask, world: World
) -> None:
    mine = publish(world, ["V11"])
    town = publish(world, ["T1"])
    county = publish(world, ["C0"])
    publish(world, ["V12"])
    publish(world, ["T2"])
    player = Player(app, world.village, "屏")
    (welcome_name, welcome), (snap_name, snap) = player.first
    assert (welcome_name, snap_name) == (protocol.WELCOME, protocol.SNAPSHOT)
    assert welcome["screen"]["code"] == player.screen.code
    assert welcome["county_name"] == "清源县"
    assert welcome["revision"] == snap["revision"] == revisions.screen_revision(player.screen)
    protocol.check_snapshot(snap)
    assert {n["code"] for n in snap["notices"]} == {mine.code, town.code, county.code}
    db.session.refresh(player.screen)
    assert player.screen.online and player.screen.connected_sid


def test_connect_with_the_current_revision_and_digest_gets_no_snapshot(
    app: Flask, world: World
) -> None:
    publish(world, ["V11"])
    screen, token = screen_service.provision(None, world.village, "屏")
    snap = playlist.snapshot(screen)
    client = connect(app, {"token": token, "revision": snap.revision, "digest": snap.digest})
    assert [name for name, _ in names(client)] == [protocol.ALERTS, protocol.WELCOME]
    # Same revision, wrong digest (e.g. a corrupted cache): a snapshot.
    client = connect(app, {"token": token, "revision": snap.revision, "digest": "x"})
    assert [name for name, _ in names(client)] == [
        protocol.ALERTS, protocol.WELCOME, protocol.SNAPSHOT
    ]


def test_publish_reaches_the_village_and_town_screens_and_not_another_town(
    app: Flask, world: World
) -> None:
    village = Player(app, world.village, "村")
    sibling = Player(app, world.village2, "邻村")
    town = Player(app, world.town, "镇")
    far = Player(app, world.other_village, "远")
    n = publish(world, ["V11"])
    (delta,) = village.deltas()
    assert delta["op"] == "upsert" and delta["notice"]["code"] == n.code
    assert delta["revision"] == revisions.screen_revision(village.screen)
    assert sibling.deltas() == [] and town.deltas() == [] and far.deltas() == []
    t = publish(world, ["T1"])
    for player in (village, sibling, town):
        (delta,) = player.deltas()
        assert (delta["op"], delta["notice"]["code"]) == ("upsert", t.code)
    assert far.deltas() == []
    c = publish(world, ["C0"])
    for player in (village, sibling, town, far):
        (delta,) = player.deltas()
        assert delta["notice"]["code"] == c.code


def test_withdraw_removes(app: Flask, world: World) -> None:
    n = publish(world, ["T1"])
    village = Player(app, world.village, "村")
    far = Player(app, world.other_village, "远")
    notices.withdraw(world.county_editor, n, "有误")
    (delta,) = village.deltas()
    assert delta == {
        "revision": revisions.screen_revision(village.screen),
        "op": "remove",
        "notice": {"code": n.code},
    }
    assert far.deltas() == []


def test_expiry_by_the_scheduler_removes(app: Flask, world: World) -> None:
    n = publish(world, ["V11"], expire_at=utcnow() + timedelta(hours=1))
    village = Player(app, world.village, "村")
    assert notices.run_schedule(now=utcnow() + timedelta(hours=2)) == [n.id]
    (delta,) = village.deltas()
    assert (delta["op"], delta["notice"]) == ("remove", {"code": n.code})


def test_scheduled_publication_upserts(app: Flask, world: World) -> None:
    start = utcnow() + timedelta(hours=1)
    village = Player(app, world.village, "村")
    n = notices.create(
        world.county_editor,
        NoticeInput(title="定时", body="正文", category="village", targets=["V11"],
                    publish_at=start),
    )
    notices.submit(world.county_editor, n)
    notices.approve(world.county_reviewer, n)  # releases it for its time
    assert village.deltas() == []
    notices.run_schedule(now=start + timedelta(seconds=1))
    (delta,) = village.deltas()
    assert (delta["op"], delta["notice"]["code"]) == ("upsert", n.code)


def test_republication_with_new_targets_upserts_there_and_removes_elsewhere(
    app: Flask, world: World
) -> None:
    n = publish(world, ["C0"])
    village = Player(app, world.village, "村")
    sibling = Player(app, world.village2, "邻村")
    far = Player(app, world.other_village, "远")
    county_hall = Player(app, world.county, "县融媒体中心")
    notices.update(
        world.county_editor,
        n,
        NoticeInput(title="只发柳河镇前王庄村", body="改后", category="village", targets=["V11"]),
    )
    notices.submit(world.county_editor, n)
    notices.approve(world.county_reviewer, n)
    notices.publish(world.county_editor, n)
    (delta,) = village.deltas()
    assert (delta["op"], delta["notice"]["version"]) == ("upsert", 2)
    for player in (sibling, far, county_hall):
        (delta,) = player.deltas()
        assert (delta["op"], delta["notice"]) == ("remove", {"code": n.code})
    # Whatever each screen got, it now agrees with a fresh snapshot.
    assert [x["code"] for x in playlist.snapshot_for(village.screen)["notices"]] == [n.code]
    assert playlist.snapshot_for(sibling.screen)["notices"] == []


def test_revisions_in_deltas_strictly_increase(app: Flask, world: World) -> None:
    village = Player(app, world.village, "村")
    seen = []
    for targets in (["V11"], ["T1"], ["C0"], ["V11", "T2"]):
        publish(world, targets)
        seen.extend(d["revision"] for d in village.deltas())
    assert len(seen) == 4 and seen == sorted(set(seen))


def test_sync_acks_current_or_sends_a_snapshot(app: Flask, world: World) -> None:
    publish(world, ["V11"])
    village = Player(app, world.village, "村")
    snap = playlist.snapshot(village.screen)
    ack = village.client.emit(
        protocol.SYNC, {"revision": snap.revision, "digest": snap.digest}, namespace=NS,
        callback=True,
    )
    assert ack == {"status": "current", "revision": snap.revision}
    assert events(village.client) == []
    # The same notices under an older revision: current, and the ack gives the revision.
    ack = village.client.emit(protocol.SYNC, {"revision": 1, "digest": snap.digest},
                              namespace=NS, callback=True)
    assert ack == {"status": "current", "revision": snap.revision}
    # Revision -1 asks for a full snapshot whatever the digest.
    ack = village.client.emit(protocol.SYNC, {"revision": -1, "digest": snap.digest},
                              namespace=NS, callback=True)
    assert ack["status"] == "snapshot"
    assert len(events(village.client, protocol.SNAPSHOT)) == 1
    ack = village.client.emit(protocol.SYNC, {"revision": 0, "digest": ""}, namespace=NS,
                              callback=True)
    assert ack["status"] == "snapshot"
    (snapshot,) = events(village.client, protocol.SNAPSHOT)
    protocol.check_snapshot(snapshot)
    for junk in (None, "x", [1, 2], {"revision": "a" * 5000}):
        ack = village.client.emit(protocol.SYNC, junk, namespace=NS, callback=True)
        assert ack["status"] == "snapshot"


def test_heartbeats_are_recorded_and_junk_is_ignored(app: Flask, world: World) -> None:
    village = Player(app, world.village, "村")
    beat = {"showing": None, "revision": 4, "digest": "abcd", "version": "0.1.0", "uptime_s": 60}
    ack = village.client.emit(protocol.HEARTBEAT, beat, namespace=NS, callback=True)
    assert ack == {"status": "ok"}
    screen = db.session.get(Screen, village.screen.id)
    db.session.refresh(screen)
    assert screen.state == beat and screen_service.is_online(screen)
    oversized = {**beat, "showing": "x" * (protocol.MAX_MESSAGE_BYTES // 4)}
    for junk in (oversized, None, "x", {"revision": "x"}, [beat]):
        ack = village.client.emit(protocol.HEARTBEAT, junk, namespace=NS, callback=True)
        assert ack == {"status": "ignored", "reason": "malformed heartbeat"}
    db.session.refresh(screen)
    assert screen.state == beat and village.client.is_connected(NS)


def test_disconnect_marks_the_screen_offline(app: Flask, world: World) -> None:
    village = Player(app, world.village, "村")
    village.client.disconnect(namespace=NS)
    screen = db.session.get(Screen, village.screen.id)
    db.session.refresh(screen)
    assert not screen.online and not screen_service.is_online(screen)


def test_pairing_end_to_end(app: Flask, world: World) -> None:
    player = connect(app, {"pairing": SECRET, "width": 1080, "height": 1920})
    assert player.is_connected(NS)
    ((name, pairing),) = names(player)
    assert name == protocol.PAIRING and len(pairing["code"]) == 6
    # Reconnecting with the same secret shows the same code.
    again = connect(app, {"pairing": SECRET})
    assert events(again, protocol.PAIRING)[0]["code"] == pairing["code"]
    # An editor outside the village cannot claim it; the one inside can.
    with pytest.raises(screen_service.PermissionDenied):
        screen_service.claim_pairing(world.village_editor, pairing["code"], world.other_village,
                                     "屏")
    assert events(player) == []
    screen = screen_service.claim_pairing(world.village_editor, pairing["code"], world.village,
                                          "村委会")
    assert screen.orientation == "portrait"
    (paired,) = events(player, protocol.PAIRED)
    assert screen_service.authenticate(paired["token"]) == screen
    # A player that missed the event hears it on its next connect.
    late = connect(app, {"pairing": SECRET})
    assert events(late, protocol.PAIRED) == [paired]
    # With its token it connects as the screen.
    client = connect(app, {"token": paired["token"], "revision": 0})
    assert client.is_connected(NS)
    welcome = events(client, protocol.WELCOME)[0]
    assert welcome["screen"]["code"] == screen.code


def test_revoking_a_connected_screen_tells_it_and_disconnects(app: Flask, world: World) -> None:
    village = Player(app, world.village, "村")
    screen_service.revoke(world.village_editor, village.screen, "丢失")
    assert not village.client.is_connected(NS)
    # The test client refuses get_received once disconnected; what arrived is in its queue.
    got = [e["args"][0] for e in village.client.queue if e["name"] == protocol.REVOKED]
    assert got == [{"reason": "丢失"}]  # the editor's reason reaches the screen
    assert not connect(app, {"token": village.token}).is_connected(NS)


def test_moving_a_connected_screen_swaps_its_rooms(app: Flask, world: World) -> None:
    old = publish(world, ["V11"])
    new = publish(world, ["V21"])
    player = Player(app, world.village, "屏")
    screen_service.move(world.admin, player.screen, world.other_village)
    got = names(player.client)
    assert [name for name, _ in got] == [protocol.WELCOME, protocol.SNAPSHOT]
    assert [n["code"] for n in got[1][1]["notices"]] == [new.code]
    notices.withdraw(world.county_editor, old, "撤")
    assert player.deltas() == []
    notices.withdraw(world.county_editor, new, "撤")
    assert [d["op"] for d in player.deltas()] == ["remove"]


def test_rooms_are_indexed_per_connection_and_left_whole_on_disconnect(
    app: Flask, world: World
) -> None:
    from server.realtime import rooms

    manager = socketio.server.manager
    assert isinstance(manager, rooms.RoomIndex)
    a = Player(app, world.village, "甲")
    b = Player(app, world.village, "乙")
    sid_a = a.client.eio_sid and manager.sid_from_eio_sid(a.client.eio_sid, NS)
    assert sid_a is not None
    chain = [f"region:{r}" for r in revisions.chain_ids(world.village)]
    expected = {*chain, f"at:{world.village.id}", f"screen:{a.screen.id}", sid_a}
    assert set(manager.get_rooms(sid_a, NS)) == expected
    assert all(sid_a in manager.rooms[NS][room] for room in expected)

    a.client.disconnect(NS)
    assert manager.get_rooms(sid_a, NS) == []
    assert not any(sid_a in members for members in manager.rooms[NS].values())
    assert f"screen:{a.screen.id}" not in manager.rooms[NS]  # its own room is gone
    assert all(r in manager.rooms[NS] for r in chain)  # the village's rooms stay for 乙
    assert b.client.is_connected(NS)
