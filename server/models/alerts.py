"""Emergency alerts (预警信息): a kind of message of their own, above every notice.

One `Alert` row is one incident as the screens see it. A CAP Update changes it in place (new
`identifier`, `version` + 1, the earlier identifiers kept in `references`), a CAP Cancel ends
it. `AlertDelivery` is the proof that a screen has the alert's current version: one row per
(alert, screen), reset when the version changes, acknowledged by the player (docs/alerts.md).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import enum_column, utcnow
from server.models.regions import Region
from server.models.users import User


class AlertStatus(enum.StrEnum):
    PENDING = "pending"  # issued, waiting for a second person to confirm (two-person rule)
    ACTIVE = "active"  # in force from starts_at until expires_at
    CANCELLED = "cancelled"  # ended early (by a person or a CAP Cancel)
    EXPIRED = "expired"  # its expires_at passed
    REJECTED = "rejected"  # the second person refused to confirm it


alert_targets = Table(
    "alert_targets",
    db.metadata,
    Column("alert_id", Integer, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("region_id", Integer, ForeignKey("regions.id"), primary_key=True),
)


class Alert(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True, index=True)  # public, /a/<code>
    # CAP: the current message's identifier and sender, and the earlier messages it updates
    # ([[sender, identifier, sent iso], ...]).
    identifier: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    sender: Mapped[str] = mapped_column(String(200))
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(default=1)
    status: Mapped[AlertStatus] = mapped_column(enum_column(AlertStatus), index=True)
    level: Mapped[int]  # 1–4: I red, II orange, III yellow, IV blue
    event: Mapped[str] = mapped_column(String(80))  # 暴雨, 台风, 地震, 森林火险 …
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    instruction: Mapped[str] = mapped_column(Text, default="")
    sender_name: Mapped[str] = mapped_column(String(200), default="")  # 清源县应急管理局
    # CAP fields kept for a faithful export.
    cap_status: Mapped[str] = mapped_column(String(16), default="Actual")
    severity: Mapped[str] = mapped_column(String(16), default="")
    urgency: Mapped[str] = mapped_column(String(16), default="")
    certainty: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(16), default="admin")  # admin | api | cap
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the current version was put in force (issue, confirmation or update): screens'
    # acknowledgement times are measured from here.
    issued_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    end_reason: Mapped[str] = mapped_column(String(500), default="")
    # Two-person rule (docs/alerts.md): the users who wrote the version awaiting confirmation
    # (the issuer and every editor of a pending alert) — none of them may confirm it …
    authors: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    # … and a change to an alert in force that raises its level or widens its targets, kept
    # here until another person confirms it: {"version", "by": [user ids], "at", "level",
    # "event", "title", "text", "instruction", "sender_name", "starts_at", "expires_at",
    # "targets": [region ids]}; None when there is none.
    proposal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    targets: Mapped[list[Region]] = relationship(secondary=alert_targets, lazy="selectin")
    issued_by: Mapped[User | None] = relationship(foreign_keys=[issued_by_id])
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])
    ended_by: Mapped[User | None] = relationship(foreign_keys=[ended_by_id])

    def __repr__(self) -> str:
        return f"<Alert {self.code} L{self.level} {self.status.value}>"


class AlertDelivery(db.Model):  # type: ignore[name-defined,misc]
    """Has `screen` acknowledged `version` of `alert`? Attempts count the sends of it."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "screen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    screen_id: Mapped[int] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"),
                                           index=True)
    version: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    first_sent_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    latency_ms: Mapped[int | None]  # acked_at − the alert's issued_at
    # When the screen, after the alert ended (cancelled or expired), acknowledged a set without
    # it: the proof that it took the alert down.
    cleared_at: Mapped[datetime | None]

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None
