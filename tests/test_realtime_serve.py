"""`cunping serve` under gevent: a real python-socketio client over WebSocket only."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import socketio

from player import protocol
from tests.test_cli import CUNPING, _env, _free_port


def _wait_for(url: str, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def test_players_connect_over_websocket_under_gevent(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([str(CUNPING), "demo"], env=env, check=True, capture_output=True, text=True)
    added = subprocess.run(
        [str(CUNPING), "screen", "add", "--region", "371399001001", "--name", "测试屏"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    token = next(line for line in added.splitlines() if line.startswith("token = "))
    token = token.split('"')[1]
    port = _free_port()
    proc = subprocess.Popen(
        [str(CUNPING), "serve", "--port", str(port), "--no-migrate"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/healthz", proc)
        got: dict[str, Any] = {}
        arrived = threading.Event()
        client = socketio.Client(reconnection=False)

        @client.on(protocol.WELCOME, namespace=protocol.NAMESPACE)
        def welcome(data: Any) -> None:
            got["welcome"] = data

        @client.on(protocol.SNAPSHOT, namespace=protocol.NAMESPACE)
        def snapshot(data: Any) -> None:
            got["snapshot"] = data
            arrived.set()

        client.connect(url, transports=["websocket"], namespaces=[protocol.NAMESPACE],
                       auth={"token": token, "revision": 0, "digest": ""}, wait_timeout=10)
        try:
            assert client.transport() == "websocket"
            assert arrived.wait(5), "no snapshot within 5 s"
            protocol.check_snapshot(got["snapshot"])
            assert got["snapshot"]["notices"], "the demo village has live notices"
            assert got["welcome"]["screen"]["name"] == "测试屏"
            snap = got["snapshot"]
            digest = protocol.digest(snap["notices"])
            ack = client.call(protocol.SYNC, {"revision": snap["revision"], "digest": digest},
                              namespace=protocol.NAMESPACE, timeout=5)
            assert ack["status"] == "current"
        finally:
            client.disconnect()

        refused: list[Any] = []
        bad = socketio.Client(reconnection=False)

        @bad.on("connect_error", namespace=protocol.NAMESPACE)
        def connect_error(data: Any) -> None:
            refused.append(data)

        with pytest.raises(socketio.exceptions.ConnectionError):
            bad.connect(url, transports=["websocket"], namespaces=[protocol.NAMESPACE],
                        auth={"token": "cps_nope"}, wait_timeout=5)
        assert refused == [{"message": "unknown token"}]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
