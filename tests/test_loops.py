"""A background loop's failures (server/loops.py): the database's absence is logged once when it
starts and once when it ends, with back-off in between; other errors keep their traceback, but
the same one at most once every few minutes."""

from __future__ import annotations

import logging

import psycopg
import pytest
from sqlalchemy import exc

from server.loops import LoopGuard

LOG = logging.getLogger("tests.loops")


def refused() -> exc.OperationalError:
    return exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        "Connection refused\n\tIs the server running on that host?"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(guard: LoopGuard, error: Exception | None) -> None:
    with guard.attempt():
        if error is not None:
            raise error


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_an_outage_is_two_lines_however_long_it_lasts(caplog: pytest.LogCaptureFixture,
                                                      clock: Clock) -> None:
    guard = LoopGuard("alert dispatcher", LOG, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="tests.loops"):
        for _ in range(50):
            run(guard, refused())
            clock.now += guard.delay() + 1
        run(guard, None)
        run(guard, None)
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert len(lines) == 2
    (level, message, trace), (level2, message2, trace2) = lines
    assert level == "WARNING" and trace is None
    assert message == ('alert dispatcher: database unavailable: connection failed: connection '
                       'to server at "127.0.0.1", port 5432 failed: Connection refused; '
                       "retrying with back-off")
    assert level2 == "INFO" and trace2 is None
    assert message2.startswith("alert dispatcher: database available again after ")
    assert message2.endswith(f" {clock.now - 1000:.0f} s")


def test_failed_passes_back_off_exponentially_to_a_cap_and_a_success_resets(
        clock: Clock) -> None:
    guard = LoopGuard("scheduler", LOG, clock=clock)
    assert guard.delay() == 0
    delays = []
    for _ in range(8):
        run(guard, refused())
        delays.append(guard.delay())
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    slept: list[float] = []
    guard.pause(slept.append)
    assert slept == [30]
    run(guard, None)
    assert guard.delay() == 0
    guard.pause(slept.append)
    assert slept == [30]  # no sleep when the last pass succeeded


def test_other_errors_keep_their_traceback_but_not_every_pass(
        caplog: pytest.LogCaptureFixture, clock: Clock) -> None:
    guard = LoopGuard("heartbeat writer", LOG, clock=clock, traceback_every=300)
    with caplog.at_level(logging.DEBUG, logger="tests.loops"):
        for _ in range(10):  # the same bug, every pass for a minute
            run(guard, KeyError("screen_id"))
            clock.now += 6
        run(guard, ValueError("another bug"))  # a different one is not held back
        clock.now += 300
        run(guard, KeyError("screen_id"))
        run(guard, None)
    records = caplog.records
    assert [r.levelname for r in records] == ["ERROR", "ERROR", "ERROR", "INFO"]
    assert all(r.exc_info for r in records[:3])
    assert [type(r.exc_info[1]).__name__ for r in records[:3]] == [  # type: ignore[index]
        "KeyError", "ValueError", "KeyError"]
    assert records[0].getMessage() == "heartbeat writer: pass failed; retrying in 1 s"
    assert "(9 more times since the last traceback)" in records[2].getMessage()
    assert records[3].getMessage() == "heartbeat writer: passes succeed again after 12 failed"


def test_a_failed_pass_ends_the_pass_not_the_loop() -> None:
    guard = LoopGuard("scheduler", LOG)
    done = []
    for n in range(3):
        with guard.attempt():
            if n == 1:
                raise RuntimeError("boom")
            done.append(n)
    assert done == [0, 2] and guard.failures == 0
