"""Publish and expire notices on time, by themselves (no editor needs to open the admin).

`cunping serve` starts a background loop; `cunping tick` runs one pass (for cron). Each pass is
safe to run from several processes at once (see services.notices.run_schedule).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import click
from flask import Flask

from server.database import unavailable_reason
from server.loops import LoopGuard

log = logging.getLogger(__name__)


def tick(app: Flask) -> list[int]:
    """One pass: notices due are published or expired, alerts past their expiry end."""
    from server.services import alerts, notices, plays

    with app.app_context():
        changed = notices.run_schedule()
        expired = alerts.expire_due()
        plays.purge()  # proof of play is kept PLAY_RETENTION_DAYS, then deleted
        if expired:
            log.info("alerts expired: %s", expired)
        _dashboard()
        return changed


def _dashboard() -> None:
    """Screens gone silent flip offline (announced to the dashboard); the daily digest mail."""
    from server.extensions import db
    from server.services import digest, presence

    for step in (presence.sweep_silent, digest.send_due):
        try:
            step()
        except Exception as error:  # a failed mail must not stop notices being published
            if unavailable_reason(error):
                raise  # the whole pass failed: the loop says so once (server/loops.py)
            log.exception("scheduler: %s failed", step.__name__)
            db.session.rollback()


def seconds() -> float:
    """CUNPING_SCHEDULER_SECONDS between scheduler passes (15 by default)."""
    return float(os.environ.get("CUNPING_SCHEDULER_SECONDS", "") or 15)


def start(app: Flask, interval: float = 15.0) -> Any:
    """Run `tick` every `interval` seconds as a Socket.IO background task: a greenlet under
    gevent (cooperating with the screens' connections), a daemon thread otherwise."""
    from server.extensions import socketio

    guard = LoopGuard("scheduler", log)

    def loop() -> None:
        while True:
            with guard.attempt():  # a failed pass is logged and retried, with back-off
                changed = tick(app)
                if changed:
                    log.info("scheduler changed notices %s", changed)
            guard.pause()
            socketio.sleep(interval)

    return socketio.start_background_task(loop)


def init_app(app: Flask) -> None:
    @app.cli.command("tick")
    def tick_command() -> None:
        """Publish due notices and expire old ones, once."""
        changed = tick(app)
        click.echo(f"changed {len(changed)} notices")
