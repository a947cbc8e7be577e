"""What the dashboard reads, bounded for a county of 10,000 screens: the counts are COUNTs in
SQL, the screens offline for long are a count and the first rows, and "what each screen
shows" is a page of screens — never every screen as an object. The rules are those of
`server.services.presence` and `screens.is_online`, expressed as SQL conditions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from player import protocol
from server.extensions import db
from server.models import Region, Screen
from server.models.base import utcnow
from server.services import presence

SCREENS_PER_PAGE = 50  # rows of "what each screen shows now"


def online(now: datetime) -> ColumnElement[bool]:
    """`screens.is_online` in SQL: connected, not revoked, heard from within the grace."""
    return and_(
        Screen.online.is_(True),
        Screen.connected_sid.is_not(None),
        Screen.connected_sid != "",
        Screen.revoked_at.is_(None),
        Screen.last_seen_at.is_not(None),
        Screen.last_seen_at >= now - timedelta(seconds=protocol.ONLINE_GRACE_SECONDS),
    )


def offline(now: datetime) -> ColumnElement[bool]:
    """The negation of `online` for screens in use (no NULL left undecided)."""
    return or_(
        Screen.online.is_not(True),
        Screen.connected_sid.is_(None),
        Screen.connected_sid == "",
        Screen.last_seen_at.is_(None),
        Screen.last_seen_at < now - timedelta(seconds=protocol.ONLINE_GRACE_SECONDS),
    )


def _in_scope(roots: Sequence[Region]) -> ColumnElement[bool]:
    return and_(
        Screen.revoked_at.is_(None),
        Screen.region_id.in_(
            select(Region.id).where(or_(*[Region.path.startswith(r.path) for r in roots]))
        ),
    )


def counts(roots: Sequence[Region], now: datetime | None = None) -> presence.Counts:
    """Screens in use below `roots`, and how many are online: one statement."""
    now = now or utcnow()
    if not roots:
        return presence.Counts(online=0, total=0)
    total, up = db.session.execute(
        select(func.count(Screen.id), func.coalesce(func.sum(case((online(now), 1), else_=0)), 0))
        .where(_in_scope(roots))
    ).one()
    return presence.Counts(online=int(up or 0), total=int(total or 0))


def _silent_long(roots: Sequence[Region], now: datetime) -> ColumnElement[bool]:
    since = func.coalesce(Screen.last_seen_at, Screen.created_at)
    return and_(_in_scope(roots), offline(now), since <= now - presence.offline_threshold())


def offline_count(roots: Sequence[Region], now: datetime | None = None) -> int:
    """How many screens below `roots` are offline longer than OFFLINE_ALERT_MINUTES."""
    now = now or utcnow()
    if not roots:
        return 0
    return db.session.scalar(
        select(func.count(Screen.id)).where(_silent_long(roots, now))) or 0


def offline_for_long(roots: Sequence[Region], now: datetime | None = None,
                     limit: int | None = None) -> list[presence.OfflineScreen]:
    """`presence.offline_for_long` for the screens below `roots`, longest silent first, the
    first `limit` of them (all when None)."""
    now = now or utcnow()
    if not roots:
        return []
    stmt = (
        select(Screen)
        .join(Region, Region.id == Screen.region_id)
        .where(_silent_long(roots, now))
        .order_by(func.coalesce(Screen.last_seen_at, Screen.created_at), Region.path,
                  Screen.name, Screen.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    found = list(db.session.scalars(stmt))
    shows = presence.showing(found)
    return [presence.OfflineScreen(s, s.last_seen_at or s.created_at, s.last_seen_at is None,
                                   shows[s.id]) for s in found]


def screens_page(roots: Sequence[Region], now: datetime | None = None, page: int = 1,
                 per_page: int = SCREENS_PER_PAGE) -> list[Screen]:
    """A page of the screens in use below `roots`: online ones first, then by region and
    name (the order the dashboard lists them in)."""
    now = now or utcnow()
    if not roots:
        return []
    stmt: Any = (
        select(Screen)
        .join(Region, Region.id == Screen.region_id)
        .where(_in_scope(roots))
        .order_by(case((online(now), 0), else_=1), Region.path, Screen.name, Screen.id)
        .limit(per_page)
        .offset((max(page, 1) - 1) * per_page)
    )
    return list(db.session.scalars(stmt))
