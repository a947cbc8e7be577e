"""The cyclic garbage collector in a serving process: out of the way of screens and editors.

A process holding 10,000 screens' connections keeps millions of objects alive, and Python's
collector walks all of them in every full collection: 650 ms at 10,000 screens, collecting a
few dozen objects (bench/load.py, measured with gc.callbacks). Left to itself it ran one at
every quarter of growth while screens connected (two seconds of a restart storm) and,
connected, whenever enough survivors piled up — once in the middle of an alert's delivery.

So a serving process:
- freezes what it set up at start (it lives as long as the process: `settle`);
- leaves the young generations as Python has them (they are cheap and catch most cycles);
- never starts a full collection on its own, but runs one every FULL_SECONDS from a
  background loop, logged with how long it took (a known pause at a known rate, instead of
  one whenever the allocator trips it).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

FULL_SECONDS = 600.0
# Full collections run when the middle generation has been collected this many times: never,
# in practice (the loop below runs them).
NO_AUTOMATIC_FULL = 1_000_000


def settle() -> None:
    """What is alive after start-up stays alive: collected once, then out of every later
    collection (gc.freeze). Automatic full collections off: the loop runs them."""
    gc.collect()
    gc.freeze()
    young, middle, _old = gc.get_threshold()
    gc.set_threshold(young, middle, NO_AUTOMATIC_FULL)


def collect() -> float:
    """One full collection now; returns how long it took (seconds), logged."""
    began = time.perf_counter()
    found = gc.collect()
    took = time.perf_counter() - began
    log.log(logging.INFO if took >= 0.1 else logging.DEBUG,
            "full garbage collection: %d objects in %.0f ms", found, took * 1000)
    return took


def start(interval: float = FULL_SECONDS) -> Any:
    """The background loop of a serving process: a full collection every `interval`."""
    from server.extensions import socketio

    def loop() -> None:
        while True:
            socketio.sleep(interval)
            collect()

    return socketio.start_background_task(loop)
