"""Users, their region-scoped roles, and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import enum_column, utcnow
from server.models.regions import Region


class Role(enum.StrEnum):
    """What a grant lets a user do inside its region subtree."""

    ADMIN = "admin"  # manages regions, users and categories in the subtree; sees everything
    EDITOR = "editor"  # writes, submits, publishes and withdraws notices; answers feedback
    REVIEWER = "reviewer"  # approves or rejects submitted notices
    ALERT = "alert"  # issues, confirms, updates and cancels emergency alerts (预警发布)


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    """A person who logs in to the admin or calls the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(80), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    # The admin session this request runs in (server/services/sessions.py): set when the
    # session is looked up, not stored on the user.
    session_key: ClassVar[str | None] = None  # set per instance; ClassVar keeps it unmapped

    @property
    def is_active(self) -> bool:  # Flask-Login asks this
        return self.active

    def get_id(self) -> str:
        """What the session and the remember cookie keep: the user and their session's key,
        so that a session ended in the database ends the cookies too (every process)."""
        return f"{self.id}:{self.session_key}" if self.session_key else str(self.id)

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def regions_for(self, role: Role) -> list[Region]:
        """The roots of the subtrees where this user holds `role`."""
        return [g.region for g in self.grants if g.role == role]

    def has_role(self, role: Role) -> bool:
        return any(g.role == role for g in self.grants)

    def __repr__(self) -> str:
        return f"<User {self.username}>"


# One user per name whatever its case (`Admin` is `admin`): the database holds to it even when
# two requests create the same name at once, and looking a name up at login uses this index.
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class RoleGrant(db.Model):  # type: ignore[name-defined,misc]
    """`user` holds `role` over `region` and everything below it."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "region_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(enum_column(Role))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)

    user: Mapped[User] = relationship(back_populates="grants")
    region: Mapped[Region] = relationship(lazy="joined")


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """A personal API token. Only a SHA-256 of the secret is stored; the prefix identifies it."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


class UserSession(db.Model):  # type: ignore[name-defined,misc]
    """A login to the admin: ended by logging out, by a password change, by the user from
    another session, or by staying unused too long (server/services/sessions.py)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    remember: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str] = mapped_column(String(32), default="")

    user: Mapped[User] = relationship()
