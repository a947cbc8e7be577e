"""Screens in villages, their pairing requests, and the revisions that tell them what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import utcnow
from server.models.regions import Region


class Screen(db.Model):  # type: ignore[name-defined,misc]
    """A display in a region (usually a village) that plays the notices aimed at it.

    The device token is stored as a SHA-256 only; `token_prefix` identifies it in lists. A
    screen being paired has no token yet (`token_hash` is NULL until the claim)."""

    __tablename__ = "screens"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(80))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16), default="")
    revoked_at: Mapped[datetime | None]
    width: Mapped[int] = mapped_column(default=1920)
    height: Mapped[int] = mapped_column(default=1080)
    orientation: Mapped[str] = mapped_column(String(16), default="landscape")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None]
    last_ip: Mapped[str | None] = mapped_column(String(64))
    online: Mapped[bool] = mapped_column(default=False)
    connected_sid: Mapped[str | None] = mapped_column(String(64))
    # From the last heartbeat: showing, revision, digest, version, uptime_s.
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    region: Mapped[Region] = relationship(lazy="joined")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:
        return f"<Screen {self.code} {self.name}>"


class PairingRequest(db.Model):  # type: ignore[name-defined,misc]
    """A player without a token asked to be paired: it shows `code`, an editor claims it.

    The player is known by a secret it generated (only its hash is stored). When claimed, the
    new screen's token is kept here in plain text until the player has received it once."""

    __tablename__ = "pairing_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code: Mapped[str] = mapped_column(String(6), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    screen_id: Mapped[int | None] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"))
    token: Mapped[str | None] = mapped_column(String(128))
    width: Mapped[int] = mapped_column(default=1920)
    height: Mapped[int] = mapped_column(default=1080)
    # Where the player asked from: one address may hold only so many pending codes.
    ip: Mapped[str] = mapped_column(String(45), default="", server_default="", index=True)

    screen: Mapped[Screen | None] = relationship()


class RegionRevision(db.Model):  # type: ignore[name-defined,misc]
    """The global revision at which what screens in this region should show last changed."""

    __tablename__ = "region_revisions"

    region_id: Mapped[int] = mapped_column(
        ForeignKey("regions.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    revision: Mapped[int] = mapped_column(default=0)


class Counter(db.Model):  # type: ignore[name-defined,misc]
    """Named monotonic counters (one row each), bumped with `UPDATE ... RETURNING`."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
