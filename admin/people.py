"""Regions, users, API tokens, categories and the audit log."""

from __future__ import annotations

from admin import bp  # noqa: F401
