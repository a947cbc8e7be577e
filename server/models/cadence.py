"""Disclosure cadence (公开频次): how often a region's villages must publish a category."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db
from server.models.base import utcnow
from server.models.notices import Category
from server.models.regions import Region


class CadenceRule(db.Model):  # type: ignore[name-defined,misc]
    """Every village under `region` publishes `category` at least every `every_days` days
    (finances monthly: 31; village affairs quarterly: 92). A rule on a lower region overrides
    one above it for the same category."""

    __tablename__ = "cadence_rules"
    __table_args__ = (UniqueConstraint("region_id", "category_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"),
                                           index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"))
    every_days: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    region: Mapped[Region] = relationship(lazy="joined")
    category: Mapped[Category] = relationship(lazy="joined")
