"""Publish and expire notices on time, by themselves (no editor needs to open the admin).

`cunping serve` starts a background loop; `cunping tick` runs one pass (for cron). Each pass is
safe to run from several processes at once (see services.notices.run_schedule).
"""

from __future__ import annotations

import logging
import threading
import time

import click
from flask import Flask

log = logging.getLogger(__name__)


def tick(app: Flask) -> list[int]:
    from server.services import notices

    with app.app_context():
        return notices.run_schedule()


def start(app: Flask, interval: float = 15.0) -> threading.Thread:
    """Run `tick` every `interval` seconds in a daemon thread (a greenlet under gevent)."""

    def loop() -> None:
        while True:
            try:
                changed = tick(app)
                if changed:
                    log.info("scheduler changed notices %s", changed)
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("scheduler pass failed")
            time.sleep(interval)

    thread = threading.Thread(target=loop, name="cunping-scheduler", daemon=True)
    thread.start()
    return thread


def init_app(app: Flask) -> None:
    @app.cli.command("tick")
    def tick_command() -> None:
        """Publish due notices and expire old ones, once."""
        changed = tick(app)
        click.echo(f"changed {len(changed)} notices")
