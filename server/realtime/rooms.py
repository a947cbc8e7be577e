"""python-socketio's client managers with an index from each connection to its rooms.

python-socketio finds the rooms of a connection that goes away by scanning every room of the
namespace (`BaseManager.basic_disconnect`, a bidict membership test per room). Every connection
is a room of its own, and each screen joins a room per region of its chain and one for itself:
at 10,000 screens a disconnect, or a handshake refused as busy, scans some 21,000 rooms —
several milliseconds each. In a reconnect storm that is thousands a second, and the process
spent most of its time there (py-spy, bench/load.py). With the index a disconnect touches only
the connection's own rooms; everything else is python-socketio's own code.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


class RoomIndex:
    """Mixin for a python-socketio client manager (before it in the bases)."""

    rooms: dict[Any, dict[Any, Any]]
    callbacks: dict[str, Any]
    pending_connect: dict[str, list[str]]
    pending_disconnect: dict[str, list[str]]

    def _rooms_of(self) -> dict[tuple[str, str], set[Any]]:
        index: dict[tuple[str, str], set[Any]] | None = self.__dict__.get("_room_index")
        if index is None:
            index = self.__dict__["_room_index"] = {}
        return index

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)  # type: ignore[misc]
        self._rooms_of().setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)  # type: ignore[misc]
        index = self._rooms_of()
        rooms = index.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del index[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """BaseManager.basic_disconnect, leaving the connection's own rooms only."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of().get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self._rooms_of().pop((namespace, sid), None)
        if sid in self.callbacks:
            del self.callbacks[sid]
        for pending in (self.pending_connect, self.pending_disconnect):
            if namespace in pending and sid in pending[namespace]:
                pending[namespace].remove(sid)
                if len(pending[namespace]) == 0:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._rooms_of().get((namespace, sid), ()) if r is not None]


# Messages between the server processes themselves (no connection is ever in it): emitted like
# any event, so with a message queue every process hears it, and each hands it to `on_internal`
# (server/realtime/__init__.py: invalidations of the screens' directory).
INTERNAL = "/cunping-internal"


class Manager(RoomIndex, socketio.Manager):
    """One process."""

    on_internal: Any = None

    def emit(self, event: str, data: Any, namespace: str, *args: Any, **kwargs: Any) -> Any:
        if namespace == INTERNAL:
            if self.on_internal is not None:
                self.on_internal(event, data)
            return None
        return super().emit(event, data, namespace, *args, **kwargs)


class RedisManager(RoomIndex, socketio.RedisManager):
    """Several processes with a Redis message queue."""

    on_internal: Any = None

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("namespace") == INTERNAL:  # this process's own, or another's
            data = message.get("data")
            if self.on_internal is not None:
                self.on_internal(message.get("event"), data[0] if isinstance(data, list)
                                 and len(data) == 1 else data)
            return
        super()._handle_emit(message)


def encode(server: socketio.Server, event: str, data: Any, namespace: str) -> list[Any]:
    """An event encoded as the Engine.IO packets python-socketio would write for it: encoded
    once, written to any number of connections with `send_encoded` (what `Manager.emit` does
    for the recipients of one emit, kept for the many emits of the same content — the snapshot
    every screen of a village is sent when it connects)."""
    pkt = server.packet_class(packet.EVENT, namespace=namespace, data=[event, data])
    encoded = pkt.encode()
    return [eio_packet.Packet(eio_packet.MESSAGE, part)
            for part in (encoded if isinstance(encoded, list) else [encoded])]


def send_encoded(server: socketio.Server, sid: str, namespace: str, packets: list[Any]) -> bool:
    """Write packets from `encode` to the connection `sid` of this process; False when it is
    not (or no longer) connected."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    if eio_sid is None:
        return False
    for part in packets:
        server._send_eio_packet(eio_sid, part)
    return True


def client_manager(queue: str | None, channel: str) -> socketio.Manager:
    """The manager for this process: Redis when a queue URL is given."""
    if queue:
        if not queue.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"SOCKETIO_MESSAGE_QUEUE must be a redis:// URL, not {queue!r}")
        return RedisManager(queue, channel=channel, write_only=False)
    return Manager()
