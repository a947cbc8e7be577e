"""Admission control: a saturated process refuses new Socket.IO handshakes before it spends
anything on them.

A restart brings every screen back at once. Accepted as they come, handshakes time out while
they queue behind each other; their players retry into the same saturated process and every
retry costs it again (congestion collapse: 3,572 of 10,000 screens back after 200 s, 71,340
failed attempts). Here a new Engine.IO handshake (a /socket.io/ request without `sid`) is
refused with HTTP 503 before python-engineio sees it — a few microseconds — when
- more than `rate` handshakes a second came in (a token bucket, `burst` deep), or
- `in_flight` handshakes admitted are not through their Socket.IO connect yet (each connect
  must finish well inside the player's 10 s connect timeout: a queue of admitted handshakes is
  work the players give up on, close and bring back — measured, 8,293 of them in one storm), or
- the process is late on its own work (the event loop lags more than `lag_limit` seconds:
  the admin's pages, pushes and alerts come first).

The answer tells the player when to come back (`Retry-After`, and {"message": protocol.BUSY,
"retry_after": s} for clients that read the body). The hint is the queue in front of it: every
refusal is handed a slot, (waiting + 1) / rate seconds ahead, where `waiting` counts the slots
handed out that have not come due yet — so a storm of N screens is told to spread over N / rate
seconds and drains at the process's full connect rate instead of collapsing, and a screen
refused again when its slot came (the process ran late) is not pushed behind slots that have
already passed. Players add jitter on top (player/client.py).
"""

from __future__ import annotations

import bisect
import collections
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from player import protocol

RATE = 400.0  # handshakes a second admitted (measured: ~2 ms of CPU each, bench/load.py)
BURST = 200
IN_FLIGHT = 64  # admitted handshakes not through their connect yet
IN_FLIGHT_SECONDS = 10.0  # an admitted handshake that never connects stops counting then
PACE_SECONDS = 5.0  # hints follow the rate actually admitted over this long
LAG_LIMIT = 0.25  # seconds the event loop may be late before handshakes wait
MAX_RETRY_AFTER = 60.0
LAG_TICK = 0.05


class Gate:
    def __init__(self, rate: float = RATE, burst: float = BURST, in_flight: int = IN_FLIGHT,
                 lag_limit: float = LAG_LIMIT,
                 on_refuse: Callable[[], None] | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self.in_flight = in_flight
        self._admitted: collections.deque[float] = collections.deque()  # not settled yet
        self._recent: collections.deque[float] = collections.deque()  # admitted, last PACE s
        self.lag_limit = lag_limit
        self.on_refuse = on_refuse
        self._tokens = burst
        self._stamp = time.monotonic()
        self._stamp_started = self._stamp
        self._slots: list[float] = []  # retry times handed out, ascending
        self._lock = threading.Lock()
        self.lag = 0.0  # seconds the loop was late at its last tick (see watch_lag)
        self.admitted = 0
        self.refused = 0

    def admit(self, now: float | None = None) -> float | None:
        """None: go ahead. Otherwise the seconds after which to try again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = max(self._stamp, now)
            admitted = self._admitted
            while admitted and admitted[0] < now - IN_FLIGHT_SECONDS:
                admitted.popleft()
            recent = self._recent
            while recent and recent[0] < now - PACE_SECONDS:
                recent.popleft()
            if self.lag <= self.lag_limit and self._tokens >= 1 \
                    and len(admitted) < self.in_flight:
                self._tokens -= 1
                self.admitted += 1
                admitted.append(now)
                recent.append(now)
                return None
            self.refused += 1
            # The screens told to come back later and not due yet are the queue in front.
            due = bisect.bisect_right(self._slots, now)
            if due:
                del self._slots[:due]
            wait = min(MAX_RETRY_AFTER, max(1.0, (len(self._slots) + 1) / self.pace(now)))
            bisect.insort(self._slots, now + wait)
        if self.on_refuse is not None:
            self.on_refuse()
        return wait

    def pace(self, now: float) -> float:
        """Handshakes a second the process really takes: what it admitted over the last
        PACE_SECONDS once it has been running that long (a saturated process takes fewer than
        `rate`, and hints at `rate` bring screens back too early, to be refused again), never
        below a tenth of `rate`."""
        if now - self._stamp_started < PACE_SECONDS:
            return self.rate
        return min(self.rate, max(self.rate / 10, len(self._recent) / PACE_SECONDS))

    def settled(self) -> None:
        """A handshake got through its Socket.IO connect (accepted or refused)."""
        with self._lock:
            if self._admitted:
                self._admitted.popleft()

    def watch_lag(self, sleep: Callable[[float], Any]) -> None:
        """Measure how late the event loop runs (a greenlet of a serving process)."""
        while True:
            began = time.monotonic()
            sleep(LAG_TICK)
            self.lag = max(0.0, time.monotonic() - began - LAG_TICK)


def is_handshake(environ: dict[str, Any], path: str = "/socket.io") -> bool:
    """A new Engine.IO session: a request under the Socket.IO path with no `sid`."""
    if not environ.get("PATH_INFO", "").startswith(path):
        return False
    query = environ.get("QUERY_STRING", "")
    return "sid=" not in query


class Middleware:
    """WSGI middleware in front of Flask-SocketIO's."""

    def __init__(self, app: Callable[..., Iterable[bytes]], gate: Gate) -> None:
        self.app = app
        self.gate = gate

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_handshake(environ):
            wait = self.gate.admit()
            if wait is not None:
                seconds = math.ceil(wait)
                body = json.dumps({"message": protocol.BUSY, "retry_after": seconds}).encode()
                start_response("503 Service Unavailable", [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", str(seconds)),
                    ("Cache-Control", "no-store"),
                ])
                return [body]
        return self.app(environ, start_response)
