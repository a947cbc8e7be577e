"""Screenshots: on request a screen sends the frame it shows now (protocol.SCREENSHOT → FRAME).

An editor or admin who may manage the screen asks (`request`); the player answers with a JPEG of
its frame, which is checked (the request is this screen's and still pending, base64, at most
protocol.MAX_FRAME_BYTES, really a JPEG that decodes) and kept (`receive`). A screen is asked at
most once every RATE_SECONDS: asking again meanwhile returns the same request. Only the last
KEEP frames of each screen are kept.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from PIL import Image
from sqlalchemy import delete, select

from player import protocol
from server.extensions import db, socketio
from server.models import Screen, Screenshot, User
from server.models.base import utcnow
from server.services import audit, presence
from server.services import screens as screen_service
from server.services.errors import Conflict, PermissionDenied

log = logging.getLogger(__name__)

RATE_SECONDS = 10  # one request a screen this often; a second click meanwhile reuses the first
PENDING_SECONDS = 60  # a frame later than this is refused: the editor has given up waiting
KEEP = 5  # frames kept per screen
MAX_SIDE = 8192
# base64 makes 4 characters of every 3 bytes: a longer string cannot decode to an allowed JPEG.
MAX_BASE64 = 4 * ((protocol.MAX_FRAME_BYTES + 2) // 3)


def can_view(actor: User, screen: Screen) -> bool:
    """Whoever sees the screen on the dashboard sees its screenshots."""
    return any(root.contains(screen.region) for root in presence.dashboard_roots(actor))


def request(actor: User, screen: Screen, now: datetime | None = None) -> Screenshot:
    """Ask `screen` for the frame it shows now; returns the request (pending until the frame
    arrives). PermissionDenied unless `actor` may manage the screen; Conflict when the screen
    is revoked or offline."""
    now = now or utcnow()
    if not screen_service.can_manage(actor, screen.region):
        raise PermissionDenied(_("You may not manage this screen: it is outside your regions."))
    if screen.revoked_at is not None:
        raise Conflict(_("This screen is revoked."))
    if not screen_service.is_online(screen, now):
        raise Conflict(_("The screen is offline: it cannot send what it shows."))
    recent = db.session.scalar(
        select(Screenshot)
        .where(Screenshot.screen_id == screen.id,
               Screenshot.requested_at > now - timedelta(seconds=RATE_SECONDS))
        .order_by(Screenshot.requested_at.desc(), Screenshot.id.desc())
        .limit(1)
    )
    if recent is not None:
        return recent
    shot = Screenshot(screen_id=screen.id, request=secrets.token_urlsafe(12), requested_at=now,
                      requested_by_id=actor.id)
    db.session.add(shot)
    audit.record(actor, "screen", screen.id, "screenshot", detail={"code": screen.code})
    db.session.commit()
    # Save, then push: the player answers with FRAME naming this request.
    socketio.emit(protocol.SCREENSHOT, {"request": shot.request}, to=f"screen:{screen.id}",
                  namespace=protocol.NAMESPACE)
    return shot


def _refused(screen: Screen, reason: str) -> dict[str, Any]:
    log.warning("screen %s sent a frame that was refused: %s", screen.code, reason)
    return {"status": "refused", "reason": reason}


def _decode(image: Any) -> tuple[bytes, int, int] | str:
    """The JPEG's bytes and size, or the reason it is refused."""
    if not isinstance(image, str) or not image:
        return "no image"
    if len(image) > MAX_BASE64:
        return "image too large"
    try:
        raw = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        return "image is not base64"
    if len(raw) > protocol.MAX_FRAME_BYTES:
        return "image too large"
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format != "JPEG":
                return "not a JPEG"
            width, height = img.size
            if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
                return "image size out of range"
            img.load()  # decode it all: a truncated or corrupt file fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "not a JPEG"
    return raw, width, height


def receive(screen: Screen, data: Any, now: datetime | None = None) -> dict[str, Any]:
    """The player's FRAME: {"request", "image" (base64 JPEG), "width", "height", "showing"}.
    Returns the ack: {"status": "ok"}, or {"status": "refused", "reason": ...}."""
    now = now or utcnow()
    if not isinstance(data, dict):
        return _refused(screen, "bad frame")
    request_id = data.get("request")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 40:
        return _refused(screen, "unknown request")
    shot = db.session.scalar(select(Screenshot).where(Screenshot.request == request_id))
    if shot is None or shot.screen_id != screen.id:
        return _refused(screen, "unknown request")
    if shot.taken_at is not None:
        return _refused(screen, "already answered")
    if now - shot.requested_at > timedelta(seconds=PENDING_SECONDS):
        return _refused(screen, "request expired")
    decoded = _decode(data.get("image"))
    if isinstance(decoded, str):
        return _refused(screen, decoded)
    raw, width, height = decoded
    showing = data.get("showing")
    shot.image = raw
    shot.width, shot.height = width, height
    shot.showing = showing if isinstance(showing, str) and len(showing) <= 16 else None
    shot.taken_at = now
    db.session.flush()
    _prune(screen)
    db.session.commit()
    return {"status": "ok"}


def _prune(screen: Screen) -> None:
    """Keep the last KEEP frames of the screen, and no request left unanswered for a day."""
    keep = db.session.scalars(
        select(Screenshot.id)
        .where(Screenshot.screen_id == screen.id, Screenshot.taken_at.is_not(None))
        .order_by(Screenshot.taken_at.desc(), Screenshot.id.desc())
        .limit(KEEP)
    ).all()
    db.session.execute(
        delete(Screenshot).where(
            Screenshot.screen_id == screen.id,
            Screenshot.taken_at.is_not(None),
            Screenshot.id.not_in(keep),
        )
    )
    db.session.execute(
        delete(Screenshot).where(
            Screenshot.screen_id == screen.id,
            Screenshot.taken_at.is_(None),
            Screenshot.requested_at < utcnow() - timedelta(days=1),
        )
    )


def latest(screen: Screen) -> Screenshot | None:
    """The newest frame the screen sent, or None."""
    return db.session.scalar(
        select(Screenshot)
        .where(Screenshot.screen_id == screen.id, Screenshot.taken_at.is_not(None))
        .order_by(Screenshot.taken_at.desc(), Screenshot.id.desc())
        .limit(1)
    )


def pending(screen: Screen, now: datetime | None = None) -> Screenshot | None:
    """A request still waiting for its frame (asked less than PENDING_SECONDS ago), or None."""
    now = now or utcnow()
    return db.session.scalar(
        select(Screenshot)
        .where(Screenshot.screen_id == screen.id, Screenshot.taken_at.is_(None),
               Screenshot.requested_at > now - timedelta(seconds=PENDING_SECONDS))
        .order_by(Screenshot.requested_at.desc(), Screenshot.id.desc())
        .limit(1)
    )
