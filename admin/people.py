"""Regions, users, API tokens, categories and the audit log."""

from __future__ import annotations

from admin import bp
from admin.guards import login_required


# Placeholders until the admin UI work fills them in (the nav links to them).
@bp.get("/regions")
@login_required
def region_list() -> str:
    return "regions"


@bp.get("/users")
@login_required
def user_list() -> str:
    return "users"


@bp.get("/categories")
@login_required
def category_list() -> str:
    return "categories"


@bp.get("/audit")
@login_required
def audit_log() -> str:
    return "audit"


@bp.get("/account")
@login_required
def account() -> str:
    return "account"
