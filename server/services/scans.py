"""Counting residents' scans of a notice's code, per notice and per screen."""

from __future__ import annotations

from sqlalchemy import func, select

from server.extensions import db
from server.models import Notice, ScanEvent
from server.services.feedback import SCREEN_CODE_RE

KINDS = ("view", "app_open", "app_download")


def record(notice: Notice, kind: str = "view", screen_code: str | None = None) -> None:
    """Count one scan; an unknown kind or a malformed screen code is not stored as such."""
    if kind not in KINDS:
        return
    if screen_code and not SCREEN_CODE_RE.match(screen_code):
        screen_code = None
    db.session.add(ScanEvent(notice_id=notice.id, kind=kind, screen_code=screen_code or None))
    db.session.commit()


def counts(notice: Notice) -> dict[str, int]:
    """Scans of this notice by kind."""
    rows = db.session.execute(
        select(ScanEvent.kind, func.count())
        .where(ScanEvent.notice_id == notice.id)
        .group_by(ScanEvent.kind)
    ).all()
    return {kind: 0 for kind in KINDS} | {kind: n for kind, n in rows}


def by_screen(notice: Notice) -> list[tuple[str, int]]:
    """Views of this notice per screen code (scans without a screen code are left out)."""
    rows = db.session.execute(
        select(ScanEvent.screen_code, func.count())
        .where(
            ScanEvent.notice_id == notice.id,
            ScanEvent.kind == "view",
            ScanEvent.screen_code.is_not(None),
        )
        .group_by(ScanEvent.screen_code)
        .order_by(func.count().desc())
    ).all()
    return [(code, n) for code, n in rows]
