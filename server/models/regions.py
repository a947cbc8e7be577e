"""Regions: the county → town/street → village/community tree (any depth)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db


class Region(db.Model):  # type: ignore[name-defined,misc]
    """One node of the administrative tree.

    `path` is a materialised path of ids ("/1/4/9/") so that "is X inside Y's subtree" and
    "every region under Y" are one indexed prefix comparison on any database.
    """

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(80))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    path: Mapped[str] = mapped_column(String(255), index=True, default="")
    depth: Mapped[int] = mapped_column(default=0)

    parent: Mapped[Region | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Region]] = relationship(back_populates="parent", order_by="Region.code")

    def contains(self, other: Region) -> bool:
        """True when `other` is this region or lies below it."""
        return other.path.startswith(self.path)

    @property
    def level_name(self) -> str:
        """The usual name of this depth (county, town, village); deeper levels are 'group'."""
        return ("county", "town", "village")[self.depth] if self.depth < 3 else "group"

    def ancestors(self) -> list[Region]:
        """From the root down to the parent."""
        chain: list[Region] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return list(reversed(chain))

    @property
    def full_name(self) -> str:
        """Names from the top down, e.g. 河东区 · 汤河镇 · 前明村."""
        return " · ".join([r.name for r in self.ancestors()] + [self.name])

    def __repr__(self) -> str:
        return f"<Region {self.code} {self.name}>"
