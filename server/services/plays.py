"""Proof of play: the players' PLAYS reports, checked, counted once, and summed per local day,
notice and screen into PlayStat (see player/protocol.py for the shapes).

A batch is counted at most once: its id is stored in PlayBatch in the same transaction as the
sums, so a player that resends a batch whose ack it missed gets "duplicate" and nothing is added.
Both writes are INSERT ... ON CONFLICT, which is safe when two processes race on one row, on
SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from player import protocol
from server import metrics
from server.extensions import db
from server.models import Notice, PlayBatch, PlayStat, Revision, RevisionState, Screen
from server.models.base import utcnow
from server.models.notices import revision_targets
from server.services.presence import local_day

log = logging.getLogger(__name__)

BATCH_MAX = 40  # PlayBatch.batch is String(40)
CODE_MAX = 16
SECONDS_MAX = 86_400  # one slide, one day at most
# Players judge time by the server's clock (their offset, docs/protocol.md "Clocks"): a few
# minutes either way covers a late offset; a play claimed outside that is not believed.
SLACK = timedelta(minutes=10)
MAX_AGE = timedelta(days=protocol.PLAYS_KEEP_DAYS)  # the player's own retention
BATCH_KEEP_DAYS = 7  # a player resends within minutes; a week is plenty

# Why a play was not counted (the metric's label, and the acknowledgement's "refused").
MALFORMED = "malformed"
TOO_OLD = "too old"
FUTURE = "in the future"
UNKNOWN = "unknown notice"
NOT_LIVE = "not live then"
ELSEWHERE = "not for this screen"


def _insert() -> Any:
    dialect = db.session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 string as naive UTC (no zone given: UTC), or None (also for a moment that
    has no UTC equivalent, such as year 1 in a zone east of Greenwich)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return moment


def _play(item: Any, now: datetime, oldest: datetime) -> tuple[str, datetime, int] | str:
    """(code, started_at, seconds) of a well-formed Play, else why not."""
    if not isinstance(item, dict):
        return MALFORMED
    code, version, seconds = item.get("code"), item.get("version"), item.get("seconds")
    if not isinstance(code, str) or not 0 < len(code) <= CODE_MAX:
        return MALFORMED
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        return MALFORMED
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return MALFORMED
    if not 1 <= seconds <= SECONDS_MAX:
        return MALFORMED
    started = _moment(item.get("started_at"))
    if started is None:
        return MALFORMED
    if started + timedelta(seconds=seconds) > now + SLACK:
        return FUTURE
    if started < oldest:
        return TOO_OLD
    return code, started, seconds


@dataclass
class _Live:
    """When a notice was on screens, and where (the targets of every version that went live)."""

    id: int
    since: datetime | None
    until: datetime | None
    targets: set[int]


def _live(codes: set[str]) -> dict[str, _Live]:
    if not codes:
        return {}
    found = {code: _Live(nid, first, ended, set()) for code, nid, first, ended in
             db.session.execute(select(Notice.code, Notice.id, Notice.first_published_at,
                                       Notice.ended_at).where(Notice.code.in_(codes))).all()}
    by_id = {live.id: live for live in found.values()}
    rows = db.session.execute(
        select(Revision.notice_id, revision_targets.c.region_id)
        .join(revision_targets, revision_targets.c.revision_id == Revision.id)
        .where(Revision.notice_id.in_(list(by_id)),
               Revision.state.in_((RevisionState.LIVE, RevisionState.SUPERSEDED))))
    for notice_id, region_id in rows:
        by_id[notice_id].targets.add(region_id)
    return found


def _believed(live: _Live | None, chain: set[int], started: datetime, seconds: int,
              now: datetime) -> str | None:
    """None when the screen could have shown this notice for this long from `started`."""
    if live is None:
        return UNKNOWN
    if not live.targets & chain:
        return ELSEWHERE
    if live.since is None or started < live.since - SLACK:
        return NOT_LIVE
    if started + timedelta(seconds=seconds) > (live.until or now) + SLACK:
        return NOT_LIVE
    return None


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

    oldest = now - min(MAX_AGE, timedelta(days=current_app.config["PLAY_RETENTION_DAYS"]))
    refused: Counter[str] = Counter()
    plays = []
    for item in items:
        play = _play(item, now, oldest)
        if isinstance(play, str):
            refused[play] += 1
        else:
            plays.append(play)
    notices = _live({code for code, _s, _n in plays})
    chain = {int(part) for part in screen.region.path.strip("/").split("/") if part}
    sums: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    for code, started, seconds in plays:
        live = notices.get(code)
        why = _believed(live, chain, started, seconds, now)
        if why is not None:
            refused[why] += 1
            continue
        assert live is not None
        entry = sums[(local_day(started), live.id)]
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
    skipped = sum(refused.values())
    for reason, count in refused.items():
        metrics.plays_refused(reason, count)
    if skipped:
        log.info("screen %s: %s of %s plays not counted (%s)", screen.code, skipped,
                 len(items), ", ".join(f"{r}: {n}" for r, n in sorted(refused.items())))
    return {"status": "ok", "accepted": accepted, "skipped": skipped,
            "refused": dict(sorted(refused.items()))}


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
