"""When screens are on: a row per screen and local day it was seen online (开机), for the boot
rate; and the announcement of every connect and disconnect, for the live dashboard."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from server import signals
from server.extensions import db
from server.models import Screen, ScreenDay
from server.models.base import utcnow
from server.services import revisions


def local_day(moment: datetime) -> date:
    """The county's calendar day of a naive-UTC moment (CUNPING_TIMEZONE)."""
    tz = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).date()


def seen(screen: Screen, now: datetime | None = None) -> None:
    """Record that `screen` is online now (connect, heartbeat); commits."""
    now = now or utcnow()
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ScreenDay).values(
        screen_id=screen.id, day=local_day(now), first_seen_at=now, last_seen_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[ScreenDay.screen_id, ScreenDay.day],
        set_={"last_seen_at": stmt.excluded.last_seen_at},
    )
    db.session.execute(stmt)
    db.session.commit()


def announce(screen: Screen, *, online: bool) -> None:
    """Tell the live dashboard (signals.screen_presence) that `screen` came or went."""
    signals.screen_presence.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        screen_id=screen.id,
        online=online,
        region_ids=revisions.chain_ids(screen.region),
    )
