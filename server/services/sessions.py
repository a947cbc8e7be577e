"""Admin sessions that end (docs/security.md): every login is a row, and the session cookie and
the remember cookie carry its key (User.get_id), so a session ended here is ended on every
server process at the next request — by logging out, by a password change (every other session
of that user), by the user from another session (the account page), by an administrator
deactivating the user or setting their password, or by going unused for SESSION_IDLE_HOURS
(REMEMBER_DAYS with "keep me logged in").
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from server.extensions import db
from server.models import User, UserSession
from server.models.base import utcnow
from server.services import audit
from server.services.errors import NotFound, PermissionDenied

TOUCH_SECONDS = 60  # last_seen_at is written at most this often per session


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def idle_limit(row: UserSession) -> timedelta:
    config = current_app.config
    if row.remember:
        return timedelta(days=config.get("REMEMBER_DAYS", 14))
    return timedelta(hours=config.get("SESSION_IDLE_HOURS", 12))


def start(user: User, *, remember: bool, ip: str | None, user_agent: str | None) -> str:
    """A new session for `user` (after the password was checked); returns its key."""
    key = secrets.token_urlsafe(24)
    db.session.add(UserSession(user_id=user.id, key_hash=_hash(key), remember=remember,
                               ip=(ip or "")[:45], user_agent=(user_agent or "")[:200]))
    audit.record(user, "session", user.id, "login", detail={"ip": ip, "remember": remember})
    db.session.commit()
    user.session_key = key
    return key


def current(user_id: int, key: str, now: datetime | None = None) -> UserSession | None:
    """The live session of `user_id` with this key, touched; None when ended or idle too
    long (then ended now)."""
    row = db.session.scalar(select(UserSession).where(UserSession.key_hash == _hash(key)))
    if row is None or row.user_id != user_id or row.ended_at is not None:
        return None
    now = now or utcnow()
    if now - row.last_seen_at > idle_limit(row):
        _end([row], now, "idle")
        db.session.commit()
        return None
    if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        row.last_seen_at = now
        db.session.commit()
    return row


def _end(rows: list[UserSession], now: datetime, reason: str) -> None:
    for row in rows:
        row.ended_at = now
        row.end_reason = reason


def active_for(user: User) -> list[UserSession]:
    """The user's sessions that have not ended, the most recently used first."""
    rows = db.session.scalars(
        select(UserSession).where(UserSession.user_id == user.id,
                                  UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()))
    now = utcnow()
    return [r for r in rows if now - r.last_seen_at <= idle_limit(r)]


def is_current(user: User, row: UserSession) -> bool:
    return bool(user.session_key) and row.key_hash == _hash(user.session_key or "")


def end(user: User, session_id: int, reason: str = "ended") -> None:
    """`user` ends one of their own sessions (logging out ends the current one)."""
    row = db.session.get(UserSession, session_id)
    if row is None:
        raise NotFound(_("No such session."))
    if row.user_id != user.id:
        raise PermissionDenied(_("You may end only your own sessions."))
    if row.ended_at is None:
        _end([row], utcnow(), reason)
        audit.record(user, "session", user.id, "end_session",
                     detail={"session": row.id, "reason": reason})
    db.session.commit()


def end_current(user: User) -> None:
    """Logging out: the session this request runs in."""
    if not user.session_key:
        return
    row = db.session.scalar(select(UserSession).where(
        UserSession.key_hash == _hash(user.session_key)))
    if row is not None:
        end(user, row.id, "logout")


def end_all(user: User, *, actor: User | None, reason: str,
            keep_key: str | None = None) -> int:
    """End every session of `user` (but the one with `keep_key`): a password change, a
    deactivation. Returns how many ended. The caller commits."""
    stmt = (update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason))
    if keep_key:
        stmt = stmt.where(UserSession.key_hash != _hash(keep_key))
    count = int(db.session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
    if count:
        audit.record(actor, "session", user.id, "end_sessions",
                     detail={"count": count, "reason": reason, "user": user.username})
    return count
