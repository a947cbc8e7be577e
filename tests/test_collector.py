"""The garbage collector of a serving process (server/collector.py): no automatic full
collections, frozen start-up objects, a full collection on the loop's schedule."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from server import collector


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_start_up_and_leaves_full_collections_to_the_loop(restored: None) -> None:
    young, middle, _old = gc.get_threshold()
    collector.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (young, middle, collector.NO_AUTOMATIC_FULL)
    full_before = gc.get_stats()[2]["collections"]
    garbage = []
    for _ in range(300_000):  # enough allocations for many young and middle collections
        cycle: list[object] = []
        cycle.append(cycle)
        garbage.append(cycle)
    del garbage
    assert gc.get_stats()[2]["collections"] == full_before


def test_a_full_collection_frees_cycles_and_is_logged_when_long(
    restored: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector.settle()

    class Node:
        pass

    for _ in range(1000):
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
    del a, b
    full_before = gc.get_stats()[2]["collections"]
    clock = iter([0.0, 0.25])
    monkeypatch.setattr(collector.time, "perf_counter", lambda: next(clock))
    with caplog.at_level(logging.DEBUG, logger="server.collector"):
        took = collector.collect()
    assert took == 0.25
    assert gc.get_stats()[2]["collections"] == full_before + 1
    [record] = [r for r in caplog.records if r.name == "server.collector"]
    assert record.levelno == logging.INFO and "250 ms" in record.getMessage()
