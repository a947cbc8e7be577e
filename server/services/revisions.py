"""Revisions: how screens know that what they should show has changed.

One global counter, bumped in the same transaction as every change that affects screens
(publish, re-publication, withdrawal, expiry). Each affected region remembers the revision of
its last change; a screen's revision is the highest over its region chain (its region and every
ancestor), since a notice aimed at a town shows on every screen below it.

The counter is bumped with `UPDATE counters SET value = value + 1 ... RETURNING value`: the
row stays locked until the transaction ends, so concurrent writers (several server processes)
get distinct, increasing values and commit in that order.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.extensions import db
from server.models import Counter, Region, RegionRevision, Screen

COUNTER = "revision"


def chain_ids(region: Region) -> list[int]:
    """The ids of `region` and its ancestors, root first (from the materialised path)."""
    ids = [int(x) for x in region.path.strip("/").split("/") if x]
    return ids or [region.id]


def current(name: str = COUNTER) -> int:
    """The global revision (0 before anything affected a screen), or another named counter."""
    value = db.session.scalar(select(Counter.value).where(Counter.name == name))
    return int(value or 0)


def next_value(name: str = COUNTER) -> int:
    """Advance a named counter inside the current transaction and return its new value."""
    value = db.session.scalar(
        update(Counter)
        .where(Counter.name == name)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    if value is None:  # a database created without the migration's seed row
        db.session.add(Counter(name=name, value=1))
        db.session.flush()
        return 1
    return int(value)


_next = next_value


def bump(region_ids: Iterable[int]) -> int:
    """Advance the global revision and record it on each region in `region_ids`.

    Call it inside the transaction that makes the change, before the commit. Returns the new
    revision (also when `region_ids` is empty, so the caller can always report one)."""
    revision = _next()
    ids = sorted(set(region_ids))
    if ids:
        dialect = db.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(RegionRevision).values(
            [{"region_id": rid, "revision": revision} for rid in ids]
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[RegionRevision.region_id],
            set_={"revision": stmt.excluded.revision},
        )
        db.session.execute(stmt)
    return revision


def region_revision(region: Region) -> int:
    """The revision of what screens in `region` should show: max over its chain."""
    value = db.session.scalar(
        select(func.max(RegionRevision.revision)).where(
            RegionRevision.region_id.in_(chain_ids(region))
        )
    )
    return int(value or 0)


def screen_revision(screen: Screen) -> int:
    return region_revision(screen.region)
