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

A refusal also hands out a ticket for its slot (the `Cunping-Ticket` header and "ticket" in the
body: the slot's time and an HMAC with a key of this process). A screen that comes back at its
slot with it (`?ticket=` on the handshake URL) is admitted first: it takes its token even when
the bucket is empty, and newcomers wait the longer for it. Without that a storm's screens came
back at their slot to find the tokens taken by newcomers, were refused again and sent to the
back, and the last few hundred trickled in for a minute while the process idled (bench/load.py,
10,000 screens). A process late on its work or full of handshakes still refuses everyone. A
ticket is good once, from its slot for TICKET_SECONDS.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import heapq
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from player import protocol

RATE = 600.0  # handshakes a second admitted (measured: ~1.4 ms of CPU each, bench/load.py;
# at 700 the admin's pages reached 2 s during a storm)
BURST = 300
IN_FLIGHT = 64  # admitted handshakes not through their connect yet
IN_FLIGHT_SECONDS = 10.0  # an admitted handshake that never connects stops counting then
PACE_SECONDS = 5.0  # hints follow the rate actually admitted over this long …
PEAK_SECONDS = 30.0  # … or at its best so far, halved every this long since
LAG_LIMIT = 0.25  # seconds the event loop may be late before handshakes wait
MAX_RETRY_AFTER = 60.0
LAG_TICK = 0.05
TICKET_SECONDS = 60.0  # a ticket is good this long after its slot
TICKET_EARLY = 0.5  # … and this much before it (clocks, rounding)
TICKET_HEADER = protocol.TICKET_HEADER


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
        self._slots: list[float] = []  # retry times handed out, ascending
        self._lock = threading.Lock()
        self.lag = 0.0  # seconds the loop was late at its last tick (see watch_lag)
        self.admitted = 0
        self.refused = 0
        self._peak, self._peak_at = rate, self._stamp  # see pace
        self._key = secrets.token_bytes(16)
        self._used: set[str] = set()  # tickets admitted and still good
        self._expiry: list[tuple[float, str]] = []  # (when it stops being good, ticket), a heap

    def ticket(self, slot: float) -> str:
        """The ticket for a slot (this process's monotonic time)."""
        stamp = f"{int(slot * 1000):x}"
        mac = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:20]
        return f"{stamp}.{mac}"

    def _honoured(self, ticket: str | None, now: float) -> bool:
        """A ticket of this process, due, not expired, not used before (lock held)."""
        expiry = self._expiry
        while expiry and expiry[0][0] < now:  # no longer good anyway: forgotten
            self._used.discard(heapq.heappop(expiry)[1])
        if not ticket or len(ticket) > 40 or "." not in ticket:
            return False
        stamp, _sep, mac = ticket.partition(".")
        try:
            slot = int(stamp, 16) / 1000
        except ValueError:
            return False
        expected = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:20]
        if not hmac.compare_digest(mac, expected):
            return False
        if not slot - TICKET_EARLY <= now <= slot + TICKET_SECONDS or ticket in self._used:
            return False
        # (A scan of every used ticket on each handshake was a tenth of a storm's connect
        # CPU: bench/load.py --profile, 10,000 screens.)
        self._used.add(ticket)
        heapq.heappush(expiry, (slot + TICKET_SECONDS, ticket))
        return True

    def admit(self, now: float | None = None, ticket: str | None = None) -> float | None:
        """None: go ahead. Otherwise the seconds after which to try again (the slot; its
        ticket is `self.ticket(now + wait)`). `ticket`: the one a refusal handed out."""
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
            free = self.lag <= self.lag_limit and len(admitted) < self.in_flight
            holder = self._honoured(ticket, now)
            if free and (self._tokens >= 1 or holder):
                # A ticket's holder takes its token even from an empty bucket: the slot was
                # planned at the rate, and the debt holds newcomers back (a second's worth at
                # most).
                self._tokens = max(-self.rate, self._tokens - 1)
                self.admitted += 1
                admitted.append(now)
                recent.append(now)
                return None
            self.refused += 1
            # The screens told to come back later and not due yet are the queue in front.
            due = bisect.bisect_right(self._slots, now)
            if due:
                del self._slots[:due]
            # (A holder refused because the process is late or full waits its turn again:
            # sent back to the front each second, such screens kept a saturated process busy
            # refusing them — 165,000 refusals in one storm, measured.)
            wait = min(MAX_RETRY_AFTER, max(1.0, (len(self._slots) + 1) / self.pace(now)))
            bisect.insort(self._slots, now + wait)
        if self.on_refuse is not None:
            self.on_refuse()
        return wait

    def pace(self, now: float) -> float:
        """Handshakes a second the process takes: the more of what it admitted over the last
        PACE_SECONDS and its best such rate so far, halving every PEAK_SECONDS since; never
        above `rate` nor below a tenth of it. The best starts at `rate` when the process does.

        Not the last window alone: a process refusing everyone for a moment (the first herd of
        a restart, its loop late) admits nobody then, and hints at that pace sent a thousand
        screens a minute away while it idled afterwards (measured); the halving still follows
        a process that really is slower than `rate`."""
        current = len(self._recent) / PACE_SECONDS
        best = self._peak * 0.5 ** (max(0.0, now - self._peak_at) / PEAK_SECONDS)
        if current >= best:
            self._peak, self._peak_at, best = current, now, current
        return min(self.rate, max(self.rate / 10, best))

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


def ticket_of(environ: dict[str, Any]) -> str | None:
    """The `ticket` query parameter of a handshake, if any."""
    query = environ.get("QUERY_STRING", "")
    key = protocol.TICKET_PARAM + "="
    if key not in query:
        return None
    for part in query.split("&"):
        if part.startswith(key):
            return part[len(key):]
    return None


class Middleware:
    """WSGI middleware in front of Flask-SocketIO's."""

    def __init__(self, app: Callable[..., Iterable[bytes]], gate: Gate) -> None:
        self.app = app
        self.gate = gate

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_handshake(environ):
            now = time.monotonic()
            wait = self.gate.admit(now, ticket=ticket_of(environ))
            if wait is not None:
                seconds = math.ceil(wait)
                ticket = self.gate.ticket(now + wait)
                body = json.dumps({"message": protocol.BUSY, "retry_after": seconds,
                                   "ticket": ticket}).encode()
                start_response("503 Service Unavailable", [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", str(seconds)),
                    (TICKET_HEADER, ticket),
                    ("Cache-Control", "no-store"),
                ])
                return [body]
        return self.app(environ, start_response)
