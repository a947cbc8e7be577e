"""What screens did: days they were on (boot rate), what they played (proof of play), and
the frames they sent on request (screenshots). Filled by the players' reports."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db
from server.models.base import utcnow


class ScreenDay(db.Model):  # type: ignore[name-defined,misc]
    """`screen` was online at some time on local `day` (开机): one row per screen and day."""

    __tablename__ = "screen_days"

    screen_id: Mapped[int] = mapped_column(
        ForeignKey("screens.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    day: Mapped[date] = mapped_column(primary_key=True, index=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlayStat(db.Model):  # type: ignore[name-defined,misc]
    """Proof of play, aggregated: `screen` showed `notice` `plays` times for `seconds` in all
    on local `day`. Kept PLAY_RETENTION_DAYS (a disclosure must be provable)."""

    __tablename__ = "play_stats"
    __table_args__ = (UniqueConstraint("day", "notice_id", "screen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"),
                                           index=True)
    screen_id: Mapped[int] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"),
                                           index=True)
    plays: Mapped[int] = mapped_column(default=0)
    seconds: Mapped[int] = mapped_column(default=0)


class PlayBatch(db.Model):  # type: ignore[name-defined,misc]
    """A report of plays already counted: a player resending a batch whose ack it missed must
    not count twice. Pruned after a few days."""

    __tablename__ = "play_batches"

    screen_id: Mapped[int] = mapped_column(
        ForeignKey("screens.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    batch: Mapped[str] = mapped_column(String(40), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Screenshot(db.Model):  # type: ignore[name-defined,misc]
    """A frame a screen sent on request: what it showed at `taken_at` (JPEG bytes)."""

    __tablename__ = "screenshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    screen_id: Mapped[int] = mapped_column(ForeignKey("screens.id", ondelete="CASCADE"),
                                           index=True)
    request: Mapped[str] = mapped_column(String(40), unique=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    taken_at: Mapped[datetime | None]  # None until the player answered
    showing: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None]
    height: Mapped[int | None]
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
