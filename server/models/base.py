"""Helpers shared by the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Enum


def utcnow() -> datetime:
    """Naive UTC now: every timestamp in the database is naive UTC; the UI converts."""
    return datetime.now(UTC).replace(tzinfo=None)


def enum_column(cls: type[enum.Enum]) -> Enum:
    """A VARCHAR column storing the enum's values ('draft'), portable across databases."""
    return Enum(
        cls,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )
