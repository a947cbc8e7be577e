"""Counting residents' scans of a notice's code, per notice and per screen.

A scan is believed once per phone, screen and half hour (SCAN_WINDOW): the same phone reloading
the page, or a script requesting it in a loop, counts once. A `?s=` naming no screen of this
county counts nothing (the page is still shown)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import func, select

from server.extensions import db
from server.models import Notice, ScanEvent, Screen
from server.models.base import utcnow
from server.services.feedback import SCREEN_CODE_RE

KINDS = ("view", "app_open", "app_download")
SCAN_WINDOW = timedelta(minutes=30)


def client_key(address: str | None, user_agent: str | None) -> str:
    """Who scanned, not kept as such: a hash of their address and browser."""
    text = f"{address or ''}|{(user_agent or '')[:200]}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _a_screen(code: str) -> bool:
    return bool(SCREEN_CODE_RE.match(code)) and db.session.scalar(
        select(Screen.id).where(Screen.code == code)) is not None


def record(notice: Notice, kind: str = "view", screen_code: str | None = None,
           client: str = "") -> bool:
    """Count one scan (True) unless it is not to be believed: an unknown kind, a screen code
    that names no screen, or the same client, notice and screen within SCAN_WINDOW."""
    if kind not in KINDS:
        return False
    if screen_code is not None and not _a_screen(screen_code):
        return False
    now = utcnow()
    seen = db.session.scalar(
        select(ScanEvent.id).where(
            ScanEvent.notice_id == notice.id, ScanEvent.kind == kind,
            ScanEvent.client == client, ScanEvent.at >= now - SCAN_WINDOW,
            ScanEvent.screen_code.is_(None) if screen_code is None
            else ScanEvent.screen_code == screen_code).limit(1))
    if seen is not None:
        return False
    db.session.add(ScanEvent(notice_id=notice.id, kind=kind, screen_code=screen_code,
                             client=client, at=now))
    db.session.commit()
    return True


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
