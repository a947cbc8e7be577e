"""Residents' questions and objections (意见反馈) about a notice, and the editors' answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import utcnow
from server.models.notices import Notice
from server.models.users import User


class Feedback(db.Model):  # type: ignore[name-defined,misc]
    """A resident's question; shown publicly with its answer once answered."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    name: Mapped[str] = mapped_column(String(40), default="")
    contact: Mapped[str] = mapped_column(String(40), default="")  # never shown publicly
    body: Mapped[str] = mapped_column(Text)
    screen_code: Mapped[str | None] = mapped_column(String(16))
    client_hash: Mapped[str] = mapped_column(String(64), default="", index=True)
    # The nonce of the form it came from: a form is sent once (a replayed token is refused).
    form_nonce: Mapped[str | None] = mapped_column(String(24), unique=True)
    status: Mapped[str] = mapped_column(
        String(16), default="open", index=True
    )  # open|answered|hidden
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime | None]

    notice: Mapped[Notice] = relationship()
    answered_by: Mapped[User | None] = relationship()
