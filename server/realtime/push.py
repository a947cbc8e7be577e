"""Save, then push: after a commit, tell the affected screens (signals → Socket.IO rooms).

For each changed notice: an upsert with its payload to the rooms of its live targets (every
screen below them), and a removal to the screens that showed it before and no longer should —
the subtrees of its old targets minus the subtrees of its new ones, as a set of rooms (a
"region:" room where a whole subtree drops it, an "at:" room for the screens attached to a
region whose subtree keeps part of it).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy import or_, select

from player import protocol
from server import metrics, signals
from server.extensions import db, socketio
from server.models import Notice, NoticeStatus, PairingRequest, Region, Screen
from server.models.base import utcnow
from server.realtime import rooms
from server.realtime.state import Realtime, state
from server.services import playlist

# rooms.INTERNAL: forget a screen (revoked, moved, renamed, new token): {"screen_id": int}
FORGET = "forget"

log = logging.getLogger(__name__)


def _emit(event: str, data: dict[str, Any], rooms: list[str]) -> None:
    if rooms:  # never an empty `to`: python-socketio would send it to everyone
        socketio.emit(event, data, to=sorted(set(rooms)), namespace=protocol.NAMESPACE)
        if event == protocol.NOTICE:  # deliveries are counted where they are written
            metrics.notice_pushed(data.get("op", ""))


def _live_targets(notice: Notice) -> list[Region]:
    live = notice.live_revision
    if live is None or notice.status != NoticeStatus.PUBLISHED:
        return []
    if live.expire_at is not None and live.expire_at <= utcnow():
        return []
    return list(live.targets)


def removal_rooms(old_ids: Iterable[int], new_targets: list[Region]) -> list[str]:
    """Rooms reaching every screen under `old_ids` and none under `new_targets`."""
    old = list(db.session.scalars(select(Region).where(Region.id.in_(list(old_ids)))))
    new_paths = [r.path for r in new_targets]
    if all(any(r.path.startswith(p) for p in new_paths) for r in old):
        return []  # every old target is still covered (a first publish, the same targets)
    below = db.session.scalars(
        select(Region).where(or_(*[Region.path.startswith(r.path) for r in old]))
    ).all()
    children: dict[int | None, list[Region]] = defaultdict(list)
    for region in below:
        children[region.parent_id].append(region)
    rooms: set[str] = set()

    def visit(region: Region) -> None:
        if any(region.path.startswith(p) for p in new_paths):
            return  # still shown here
        if any(p.startswith(region.path) for p in new_paths):
            rooms.add(f"at:{region.id}")  # its own screens drop it; part of its subtree keeps it
            for child in children[region.id]:
                visit(child)
        else:
            rooms.add(f"region:{region.id}")

    for region in old:
        visit(region)
    return sorted(rooms)


def push_change(notice_id: int, region_ids: list[int], revision: int) -> None:
    notice = db.session.get(Notice, notice_id)
    if notice is None:
        return
    targets = _live_targets(notice)
    if targets:
        payload = {
            "revision": revision,
            "op": "upsert",
            "notice": playlist.notice_payload(notice),
        }
        _emit(protocol.NOTICE, payload, [f"region:{r.id}" for r in targets])
    removal = {"revision": revision, "op": "remove", "notice": {"code": notice.code}}
    _emit(protocol.NOTICE, removal, removal_rooms(region_ids, targets))


def on_notice_changed(
    sender: Flask,
    notice_ids: list[int] | None = None,
    changes: list[Any] | None = None,
    **kwargs: Any,
) -> None:
    directory = state(sender).directory
    for change in changes or []:
        # This process knows the new revisions at once (the others within a second, from the
        # counter, or sooner when one of their players reports it).
        directory.note([(rid, change["revision"]) for rid in change["region_ids"]])
        try:
            push_change(change["notice_id"], list(change["region_ids"]), change["revision"])
        except Exception:  # the change is saved; the players' reconcile will catch up
            log.exception("pushing notice %s failed", change.get("notice_id"))


def on_screen_paired(sender: Flask, request_id: int, **kwargs: Any) -> None:
    req = db.session.get(PairingRequest, request_id)
    if req is None or not req.token:
        return
    _emit(protocol.PAIRED, state(sender).paired(req.token), [f"pair:{req.secret_hash}"])


def _disconnect(screen_id: int, sid: str | None) -> None:
    """Close the screen's connections: `sid` (the one the database knows) and any of its
    connections in this process's "screen:" room. `sid` may live in another server process:
    with a message queue, python-socketio publishes the disconnect of a connection it does not
    hold, and the process that holds it closes it."""
    sids = {sid} if sid else set()
    server = socketio.server
    if server is None:
        return
    room = f"screen:{screen_id}"
    sids.update(s for s, _eio in server.manager.get_participants(protocol.NAMESPACE, room))
    for each in sids:
        server.disconnect(each, namespace=protocol.NAMESPACE)


def on_screen_changed(
    sender: Flask,
    screen_id: int,
    sid: str | None = None,
    reason: str = "",
    old_region_id: int | None = None,
    message: str = "",
    **kwargs: Any,
) -> None:
    """Every process forgets what it knew of the screen (through the message queue): its next
    connect is answered from the database.
    Revoked: tell the player and close its connection (in whichever process holds it).
    Moved: swap its rooms on the live connection and send it its new region's snapshot, when
    this process holds the connection; otherwise close it, and the player reconnects."""
    socketio.emit(FORGET, {"screen_id": screen_id}, namespace=rooms.INTERNAL)
    if reason == "revoked":
        # The editor's reason, shown on the screen (say, "moved to the new service hall").
        _emit(protocol.REVOKED, {"reason": message or "revoked"}, [f"screen:{screen_id}"])
        _disconnect(screen_id, sid)
        return
    screen = db.session.get(Screen, screen_id)
    server = socketio.server
    if reason != "moved" or screen is None or server is None:
        return
    rt = state(sender)
    conns = [c for c in rt.of_screen(screen_id) if sid is None or c.sid == sid]
    if not conns:
        # The connection lives in another server process, with its rooms and its alert
        # dispatcher's record of the screen's regions — or its connect is not written yet
        # (services.heartbeats), so `sid` is unknown or an older one: close it there (through
        # the message queue) and ask the player, wherever it is connected, to connect again;
        # it then joins its new region's rooms.
        _emit(protocol.REJOIN, {"reason": "moved"}, [f"screen:{screen_id}"])
        if sid:
            server.disconnect(sid, namespace=protocol.NAMESPACE)
        return
    from server.realtime.player_namespace import screen_rooms, welcome

    entry = rt.directory.remember(screen)
    if entry is None:
        return
    snap = playlist.snapshot(screen)
    for conn in conns:
        for room in screen_rooms(conn.screen):
            server.leave_room(conn.sid, room, namespace=protocol.NAMESPACE)
        conn.screen = entry
        for room in screen_rooms(entry):
            server.enter_room(conn.sid, room, namespace=protocol.NAMESPACE)
        rt.dispatcher.move(conn.sid, list(entry.chain))
        _emit(protocol.WELCOME, welcome(sender, rt, entry, snap.revision), [conn.sid])
        _emit(protocol.SNAPSHOT, snap.as_payload(), [conn.sid])


def on_alerts_changed(sender: Flask, **kwargs: Any) -> None:
    state(sender).dispatcher.wake()


def internal_receiver(rt: Realtime) -> Callable[[str, Any], None]:
    """What a process does with the messages of rooms.INTERNAL (its own and the others')."""

    def receive(event: str, data: Any) -> None:
        if event == FORGET and isinstance(data, dict) and isinstance(data.get("screen_id"), int):
            rt.directory.forget(data["screen_id"])

    return receive


def connect_signals() -> None:
    signals.notice_changed.connect(on_notice_changed)
    signals.screen_paired.connect(on_screen_paired)
    signals.screen_changed.connect(on_screen_changed)
    signals.alerts_changed.connect(on_alerts_changed)
