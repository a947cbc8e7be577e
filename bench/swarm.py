"""A swarm of simulated screens: N Socket.IO clients of the "/player" namespace in one gevent
process, speaking the real protocol (token auth, WELCOME/SNAPSHOT, heartbeats, ALERTS with
acknowledgement). It stands in for thousands of set-top boxes in benchmarks; it draws nothing.

    python bench/swarm.py --server http://127.0.0.1:5000 --tokens tokens.txt --out events.jsonl

`tokens.txt` has one screen token per line. Every ALERTS event is answered like the player does
({"have": ["code:version", ...]}) and logged to `--out` as {"t": unix time, "screen": i,
"event": "alerts", "keys": [...]}; connections as "connect"/"disconnect". It runs until killed
(SIGTERM) and prints a summary on stderr.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import socketio  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from player import protocol  # noqa: E402


class Log:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)

    def write(self, **row: Any) -> None:
        self.file.write(json.dumps({"t": time.time(), **row}) + "\n")


def screen(index: int, server: str, token: str, log: Log, heartbeat: bool) -> None:
    sio = socketio.Client(reconnection=True, reconnection_delay=1, reconnection_delay_max=30,
                          randomization_factor=0.5)

    @sio.on(protocol.ALERTS, namespace=protocol.NAMESPACE)
    def on_alerts(data: Any) -> dict[str, Any]:
        keys = [protocol.alert_key(a) for a in protocol.check_alerts(data)["alerts"]]
        log.write(screen=index, event="alerts", keys=keys)
        return {"have": keys}

    @sio.on("connect", namespace=protocol.NAMESPACE)
    def on_connect() -> None:
        log.write(screen=index, event="connect")

    @sio.on("disconnect", namespace=protocol.NAMESPACE)
    def on_disconnect(*_args: Any) -> None:
        log.write(screen=index, event="disconnect")

    auth = {"token": token, "revision": -1, "digest": "", "version": "swarm",
            "width": 1920, "height": 1080}
    while True:
        try:
            sio.connect(server, namespaces=[protocol.NAMESPACE], auth=auth,
                        transports=["websocket"], wait_timeout=30)
            break
        except socketio.exceptions.ConnectionError as exc:
            log.write(screen=index, event="connect_error", reason=str(exc))
            gevent.sleep(random.uniform(1, 5))
    while True:
        gevent.sleep(protocol.HEARTBEAT_SECONDS + random.uniform(-3, 3))
        if heartbeat and sio.connected:
            try:
                sio.emit(protocol.HEARTBEAT, {"showing": None, "revision": 0, "digest": "",
                                              "version": "swarm", "uptime_s": 0},
                         namespace=protocol.NAMESPACE)
            except socketio.exceptions.SocketIOError as exc:
                log.write(screen=index, event="heartbeat_error", reason=str(exc))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--tokens", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ramp", type=float, default=200.0, help="connections per second")
    parser.add_argument("--no-heartbeat", action="store_true")
    args = parser.parse_args()
    tokens = [t.strip() for t in args.tokens.read_text().splitlines() if t.strip()]
    log = Log(args.out)
    greenlets = []
    for i, token in enumerate(tokens):
        greenlets.append(gevent.spawn(screen, i, args.server, token, log,
                                      not args.no_heartbeat))
        gevent.sleep(1.0 / args.ramp)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    print(f"swarm: {len(tokens)} screens stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
