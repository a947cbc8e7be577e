"""Notices, their revisions, categories, images, and residents' scans."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import enum_column, utcnow
from server.models.regions import Region
from server.models.users import User


class NoticeStatus(enum.StrEnum):
    """Where a notice stands as a whole (what the notice list shows)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"  # approved and released, waiting for its publish time
    PUBLISHED = "published"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class RevisionState(enum.StrEnum):
    """Where one revision (one version of the text) stands in review."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    SCHEDULED = "scheduled"  # released, goes live at its publish time
    LIVE = "live"  # the version residents and screens see
    SUPERSEDED = "superseded"  # was live, replaced by a later revision


class Category(db.Model):  # type: ignore[name-defined,misc]
    """A kind of notice: 党务公开, 财务公开... Admins can add more."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    name_en: Mapped[str] = mapped_column(String(60), default="")
    color: Mapped[str] = mapped_column(String(7), default="#b71c1c")
    sort: Mapped[int] = mapped_column(default=100)
    active: Mapped[bool] = mapped_column(default=True)
    # Seconds a notice of this kind may hold a screen in one rotation (None: BUDGET_DEFAULT).
    budget_s: Mapped[int | None]


revision_targets = Table(
    "revision_targets",
    db.metadata,
    Column(
        "revision_id", Integer, ForeignKey("revisions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("region_id", Integer, ForeignKey("regions.id"), primary_key=True, index=True),
)


class RevisionImage(db.Model):  # type: ignore[name-defined,misc]
    """An image attached to a revision, in display order."""

    __tablename__ = "revision_images"

    revision_id: Mapped[int] = mapped_column(
        ForeignKey("revisions.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)

    image: Mapped[Image] = relationship(lazy="joined")


class Image(db.Model):  # type: ignore[name-defined,misc]
    """An uploaded picture, checked and re-encoded by Pillow, stored under its content hash."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(80))
    mime: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    size: Mapped[int]
    original_name: Mapped[str] = mapped_column(String(255), default="")
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notice(db.Model):  # type: ignore[name-defined,misc]
    """A village-affairs notice: one public short code, one or more revisions of its content."""

    __tablename__ = "notices"
    # The notice list filters by status, newest change first (100,000 notices: migration 0004).
    __table_args__ = (
        Index("ix_notices_status_updated_at", "status", "updated_at", "id"),
        Index("ix_notices_updated_at_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True, index=True)
    status: Mapped[NoticeStatus] = mapped_column(
        enum_column(NoticeStatus), index=True, default=NoticeStatus.DRAFT
    )
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    # The revision that residents and screens see (None until first published).
    live_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", use_alter=True, name="fk_notice_live_revision"), index=True
    )
    # The revision being written or reviewed (None when nothing is pending).
    pending_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", use_alter=True, name="fk_notice_pending_revision"), index=True
    )
    first_published_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]  # when the live revision went live
    ended_at: Mapped[datetime | None]  # when it expired or was withdrawn
    withdraw_reason: Mapped[str] = mapped_column(Text, default="")

    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    live_revision: Mapped[Revision | None] = relationship(
        foreign_keys=[live_revision_id], post_update=True
    )
    pending_revision: Mapped[Revision | None] = relationship(
        foreign_keys=[pending_revision_id], post_update=True
    )
    revisions: Mapped[list[Revision]] = relationship(
        back_populates="notice",
        foreign_keys="Revision.notice_id",
        order_by="Revision.number",
        cascade="all, delete-orphan",
    )

    @property
    def current(self) -> Revision:
        """The revision an editor works on: the pending one, else the live one."""
        rev = self.pending_revision or self.live_revision
        assert rev is not None, "a notice always has a revision"
        return rev

    @property
    def public_revision(self) -> Revision | None:
        """What residents may read: the live revision (also after expiry or withdrawal)."""
        return self.live_revision


# Residents type codes off a screen in whatever case (`/n/HGDPZH` is `/n/hgdpzh`): looked up by
# this index (services.notices.get_by_code).
Index("ix_notices_code_lower", func.lower(Notice.code))


class Revision(db.Model):  # type: ignore[name-defined,misc]
    """One version of a notice's content, reviewed as a whole."""

    __tablename__ = "revisions"
    # The notice list's category filter and title search (migration 0004): index-only scans.
    __table_args__ = (
        Index("ix_revisions_category_id_id", "category_id", "id"),
        Index("ix_revisions_title_id", "title", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(default=1)
    state: Mapped[RevisionState] = mapped_column(
        enum_column(RevisionState), default=RevisionState.DRAFT, index=True
    )
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # restricted Markdown, see server/services/markup.py
    publish_at: Mapped[datetime | None] = mapped_column(index=True)
    expire_at: Mapped[datetime | None] = mapped_column(index=True)
    duration_s: Mapped[int] = mapped_column(default=20)
    pinned: Mapped[bool] = mapped_column(default=False)
    # Approval releases a revision that has a publish time, unless its editor holds it.
    hold: Mapped[bool] = mapped_column(default=False)
    budget_s: Mapped[int | None]  # per rotation; None: the category's, else BUDGET_DEFAULT
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    reject_reason: Mapped[str] = mapped_column(Text, default="")

    notice: Mapped[Notice] = relationship(back_populates="revisions", foreign_keys=[notice_id])
    category: Mapped[Category] = relationship(lazy="joined")
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    submitted_by: Mapped[User | None] = relationship(foreign_keys=[submitted_by_id])
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])
    targets: Mapped[list[Region]] = relationship(
        secondary=revision_targets, order_by="Region.code", lazy="selectin"
    )
    image_links: Mapped[list[RevisionImage]] = relationship(
        order_by="RevisionImage.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def images(self) -> list[Image]:
        return [link.image for link in self.image_links]


class ScanEvent(db.Model):  # type: ignore[name-defined,misc]
    """A resident opened a notice's page (kind=view) or clicked through to the app."""

    __tablename__ = "scan_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="view")  # view | app_open | app_download
    screen_code: Mapped[str | None] = mapped_column(String(16), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who scanned, as a hash of their address and browser (server/services/scans.py): the same
    # phone reloading the page within SCAN_WINDOW is one scan.
    client: Mapped[str] = mapped_column(String(16), default="", server_default="")
