"""The bare stack: Flask-SocketIO on gevent with no application logic, the yardstick for the
application's overhead (bench/load.py runs the same light clients against both).

Clients connect to the players' namespace ("/player", any auth) and join one room. A POST to
/emit sends one `notice` event to that room, padded to the size of the application's notice
event ({"size": bytes, "revision": int, "code": str}); its JSON answer says how many
connections the room had.

    python bench/bare_server.py --port 5100          # gevent's WSGI server, like `cunping serve`
    gunicorn -k gevent -w 1 -b 127.0.0.1:5100 'bench.bare_server:create_app()'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

from flask import Flask, jsonify, request
from flask_socketio import SocketIO, join_room

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from player import protocol

ROOM = "all"


def notice_event(size: int, revision: int, code: str) -> dict[str, Any]:
    """A notice upsert whose JSON is about `size` bytes (the filler is in the title)."""
    data: dict[str, Any] = {"revision": revision, "op": "upsert",
                            "notice": {"code": code, "version": 1, "title": ""}}
    # python-socketio writes compact JSON (no spaces after separators).
    filler = max(0, size - len(json.dumps(["notice", data], separators=(",", ":"))))
    data["notice"]["title"] = "x" * filler
    return data


def create_app() -> Flask:
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="gevent", ping_interval=25, ping_timeout=20,
                        max_http_buffer_size=protocol.MAX_MESSAGE_BYTES,
                        message_queue=os.environ.get("SOCKETIO_MESSAGE_QUEUE") or None)
    connected = {"n": 0}

    @socketio.on("connect", namespace=protocol.NAMESPACE)
    def on_connect(auth: Any = None) -> None:
        join_room(ROOM)
        connected["n"] += 1

    @socketio.on("disconnect", namespace=protocol.NAMESPACE)
    def on_disconnect(reason: Any = None) -> None:
        connected["n"] -= 1

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok", connected=connected["n"])

    @app.post("/emit")
    def emit() -> Any:
        body = request.get_json(force=True)
        data = notice_event(int(body.get("size", 1000)), int(body.get("revision", 1)),
                            str(body.get("code", "bare")))
        socketio.emit(protocol.NOTICE, data, to=ROOM, namespace=protocol.NAMESPACE)
        return jsonify(status="ok", connected=connected["n"])

    app.extensions["bench_socketio"] = socketio
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5100)
    args = parser.parse_args()
    app = create_app()
    app.extensions["bench_socketio"].run(app, host=args.host, port=args.port, log_output=False)


if __name__ == "__main__":
    main()
