"""Proof of play: the players' PLAYS reports, checked, counted once, and summed per local day,
notice and screen into PlayStat (see player/protocol.py for the shapes).

A batch is counted at most once: its id is stored in PlayBatch in the same transaction as the
sums, so a player that resends a batch whose ack it missed gets "duplicate" and nothing is added.
Both writes are INSERT ... ON CONFLICT, which is safe when two processes race on one row, on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from player import protocol
from server.extensions import db
from server.models import Notice, PlayBatch, PlayStat, Screen
from server.models.base import utcnow
from server.services.presence import local_day

log = logging.getLogger(__name__)

BATCH_MAX = 40  # PlayBatch.batch is String(40)
CODE_MAX = 16
SECONDS_MAX = 86_400  # one slide, one day at most
FUTURE_SLACK = timedelta(hours=1)  # a box's clock may run a little fast
BATCH_KEEP_DAYS = 7  # a player resends within minutes; a week is plenty


def _insert() -> Any:
    dialect = db.session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 string as naive UTC (no zone given: UTC), or None."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _play(item: Any, now: datetime, oldest: datetime) -> tuple[str, datetime, int] | None:
    """(code, started_at, seconds) of a well-formed Play, else None."""
    if not isinstance(item, dict):
        return None
    code, version, seconds = item.get("code"), item.get("version"), item.get("seconds")
    if not isinstance(code, str) or not 0 < len(code) <= CODE_MAX:
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    if not 1 <= seconds <= SECONDS_MAX:
        return None
    started = _moment(item.get("started_at"))
    if started is None or started > now + FUTURE_SLACK or started < oldest:
        return None
    return code, started, seconds


def _invalid(reason: str) -> dict[str, Any]:
    # Resending will not help: the player should drop the batch.
    return {"status": "invalid", "reason": reason}


def record(screen: Screen, data: Any, now: datetime | None = None) -> dict[str, Any]:
    """Count one PLAYS batch from `screen`; returns the acknowledgement.

    {"status": "ok", "accepted": n, "skipped": m}: n plays counted, m malformed, too old, in
    the future or of unknown notices; {"status": "ok", "accepted": 0, "duplicate": True}: the
    batch was counted before; {"status": "invalid", "reason": ...}: not a batch at all."""
    now = now or utcnow()
    if not isinstance(data, dict):
        return _invalid("plays must be an object")
    batch, items = data.get("batch"), data.get("plays")
    if not isinstance(batch, str) or not 0 < len(batch) <= BATCH_MAX:
        return _invalid(f"batch must be a string of 1–{BATCH_MAX} characters")
    if not isinstance(items, list) or len(items) > protocol.MAX_PLAYS:
        return _invalid(f"plays must be a list of at most {protocol.MAX_PLAYS}")

    oldest = now - timedelta(days=current_app.config["PLAY_RETENTION_DAYS"])
    plays = [p for p in (_play(item, now, oldest) for item in items) if p is not None]
    skipped = len(items) - len(plays)
    codes = {code for code, _s, _n in plays}
    notice_ids: dict[str, int] = (
        dict(db.session.execute(select(Notice.code, Notice.id).where(Notice.code.in_(codes))).all())
        if codes
        else {}
    )
    sums: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    for code, started, seconds in plays:
        notice_id = notice_ids.get(code)
        if notice_id is None:
            skipped += 1
            continue
        entry = sums[(local_day(started), notice_id)]
        entry[0] += 1
        entry[1] += seconds

    insert = _insert()
    claimed = db.session.execute(
        insert(PlayBatch)
        .values(screen_id=screen.id, batch=batch, received_at=now)
        .on_conflict_do_nothing(index_elements=[PlayBatch.screen_id, PlayBatch.batch])
        .returning(PlayBatch.batch)
    ).first()
    if claimed is None:
        db.session.rollback()
        return {"status": "ok", "accepted": 0, "duplicate": True}
    for (day, notice_id), (count, seconds) in sorted(sums.items()):
        stmt = insert(PlayStat).values(
            day=day, notice_id=notice_id, screen_id=screen.id, plays=count, seconds=seconds
        )
        db.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[PlayStat.day, PlayStat.notice_id, PlayStat.screen_id],
                set_={
                    "plays": PlayStat.plays + stmt.excluded.plays,
                    "seconds": PlayStat.seconds + stmt.excluded.seconds,
                },
            )
        )
    db.session.commit()
    accepted = sum(count for count, _s in sums.values())
    if skipped:
        log.info("screen %s: %s of %s plays skipped", screen.code, skipped, len(items))
    return {"status": "ok", "accepted": accepted, "skipped": skipped}


def purge(now: datetime | None = None) -> tuple[int, int]:
    """Delete play sums older than PLAY_RETENTION_DAYS and batch ids older than a week;
    returns how many of each. Commits."""
    now = now or utcnow()
    keep_from = local_day(now) - timedelta(days=current_app.config["PLAY_RETENTION_DAYS"])
    stats = _deleted(delete(PlayStat).where(PlayStat.day < keep_from))
    batches = _deleted(
        delete(PlayBatch).where(PlayBatch.received_at < now - timedelta(days=BATCH_KEEP_DAYS))
    )
    db.session.commit()
    return stats, batches


def _deleted(stmt: Any) -> int:
    result = cast(CursorResult[Any], db.session.execute(stmt))
    return int(result.rowcount or 0)
