"""The WSGI entry for production serving: `gunicorn -c deploy/gunicorn.conf.py server.wsgi:app`.

gunicorn's gevent worker patches the standard library before it imports this module, so the app
(and Flask-SocketIO, see server/realtime) runs on gevent. One worker per process: Flask-SocketIO
keeps each connection's state in the process that accepted it; several processes share the
work through nginx (ip_hash) and the Redis message queue (SOCKETIO_MESSAGE_QUEUE / REDIS_URL).

The database is not migrated here: in production `cunping db upgrade` runs once before the
processes start (deploy/cunping-migrate.service), not in every worker at once.

deploy/gunicorn.conf.py calls `start_background` in each worker once it has loaded the app: the
scheduler (it claims its work in the database, so every process may run it) and the realtime
layer's loops (server/realtime/state.py): the alert dispatcher (each process delivers alerts to
the screens connected to it), the heartbeat writer (the heartbeats of this process's screens,
written in batches), the screens' directory and the handshake gate's lag probe.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from server import create_app

log = logging.getLogger(__name__)

app = create_app()


def scheduler_enabled() -> bool:
    """CUNPING_SCHEDULER=0 leaves the scheduler out of this process (the others run it)."""
    return os.environ.get("CUNPING_SCHEDULER", "1") != "0"


def start_background(flask_app: Flask) -> list[Any]:
    """Start this process's background loops (greenlets under gevent); returns their tasks.
    Then what was set up so far, which lives as long as the process, is moved out of the
    cyclic collector's way, whose full collections run at a fixed rate (server/collector.py;
    without the freeze every full collection walked it again: 100–170 ms pauses every ten or
    so admin pages, measured with bench/bigdata.py)."""
    from server import collector, scheduler
    from server.realtime.state import state

    tasks = state(flask_app).start()
    if scheduler_enabled():
        tasks.append(scheduler.start(flask_app, interval=scheduler.seconds()))
    collector.settle()
    tasks.append(collector.start())
    log.info("background loops started: realtime%s",
             ", scheduler" if scheduler_enabled() else " (scheduler off: CUNPING_SCHEDULER=0)")
    return tasks
