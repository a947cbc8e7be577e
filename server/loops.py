"""What a background loop (the scheduler, the heartbeat writer, the alert dispatcher) does when
a pass fails: log state changes, not every pass, and wait longer between failing passes.

    guard = LoopGuard("scheduler", log)
    while True:
        with guard.attempt():
            one_pass()
        guard.pause()          # the back-off after a failed pass, nothing otherwise
        sleep(interval)

- The database unavailable (server.database.unavailable_reason): one WARNING line when it
  starts ("database unavailable: <reason>; retrying with back-off"), one INFO line when a pass
  succeeds again ("database available again after N s"), nothing in between.
- Any other error: its traceback, but the same error (type and message) at most once every
  TRACEBACK_EVERY seconds; the repeats in between are counted in the next line.
- After a failed pass the loop waits 1, 2, 4 … up to MAX_BACKOFF seconds more than usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from server.database import unavailable_reason
from server.extensions import socketio

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
TRACEBACK_EVERY = 300.0


class LoopGuard:
    """One background loop's failures: logged once per state change, and backed off."""

    def __init__(self, name: str, logger: logging.Logger, *, first: float = FIRST_BACKOFF,
                 cap: float = MAX_BACKOFF, traceback_every: float = TRACEBACK_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.log = logger
        self.first, self.cap, self.traceback_every = first, cap, traceback_every
        self.clock = clock
        self.failures = 0  # failed passes in a row
        self.down_since: float | None = None  # the database has been unavailable since then
        self._tracebacks: dict[tuple[str, str], tuple[float, int]] = {}  # when, repeats since

    def delay(self) -> float:
        """Seconds to wait, on top of the loop's own interval, before the next pass."""
        if not self.failures:
            return 0.0
        return min(self.cap, self.first * 2 ** (self.failures - 1))

    def pause(self, sleep: Callable[[float], object] | None = None) -> None:
        """Sleep the back-off, if the last pass failed (cooperatively under gevent)."""
        wait = self.delay()
        if wait > 0:
            (sleep or socketio.sleep)(wait)

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Run one pass inside: a failure is logged as above and ends the pass, not the loop."""
        try:
            yield
        except Exception as error:  # the loop must outlive any pass; logged by failed()
            self.failed(error)
        else:
            self.succeeded()

    def succeeded(self) -> None:
        if self.down_since is not None:
            self.log.info("%s: database available again after %.0f s", self.name,
                          self.clock() - self.down_since)
        elif self.failures:
            self.log.info("%s: passes succeed again after %d failed", self.name, self.failures)
        self.failures = 0
        self.down_since = None

    def failed(self, error: Exception) -> None:
        self.failures += 1
        reason = unavailable_reason(error)
        if reason is not None:
            if self.down_since is None:
                self.down_since = self.clock()
                self.log.warning("%s: database unavailable: %s; retrying with back-off",
                                 self.name, reason)
            return
        now = self.clock()
        key = (type(error).__name__, str(error)[:200])
        last, repeats = self._tracebacks.get(key, (-float("inf"), 0))
        if now - last < self.traceback_every:
            self._tracebacks[key] = (last, repeats + 1)
            return
        again = f" ({repeats} more times since the last traceback)" if repeats else ""
        self.log.error("%s: pass failed%s; retrying in %.0f s", self.name, again, self.delay(),
                       exc_info=error)
        if len(self._tracebacks) > 100:  # errors with ever-changing messages: forget old ones
            self._tracebacks.clear()
        self._tracebacks[key] = (now, 0)
