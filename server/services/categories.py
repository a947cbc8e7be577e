"""Notice categories. The six standard ones are created by the first migration."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select

from server.extensions import db
from server.models import Category, User
from server.services import audit, permissions
from server.services.errors import NotFound, ValidationError

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def active() -> list[Category]:
    return list(
        db.session.scalars(
            select(Category).where(Category.active.is_(True)).order_by(Category.sort, Category.id)
        )
    )


def all_() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.sort, Category.id)))


def create(actor: User, key: str, name: str, name_en: str = "", color: str = "#b71c1c") -> Category:
    permissions.require_system_admin(actor)
    errors: dict[str, str] = {}
    if not KEY_RE.match(key or ""):
        errors["key"] = _("2–32 lower-case letters, digits or '_', starting with a letter.")
    elif db.session.scalar(select(Category).where(Category.key == key)) is not None:
        errors["key"] = _("The key %(key)s is taken.", key=key)
    if not (name or "").strip() or len(name) > 40:
        errors["name"] = _("A name of 1–40 characters is required.")
    if not COLOR_RE.match(color or ""):
        errors["color"] = _("A colour like #b71c1c.")
    if errors:
        raise ValidationError(errors)
    cat = Category(key=key, name=name.strip(), name_en=(name_en or "").strip()[:60], color=color)
    db.session.add(cat)
    db.session.flush()
    audit.record(actor, "category", cat.id, "create", detail={"key": key, "name": name})
    db.session.commit()
    return cat


def set_active(actor: User, category: Category, active: bool) -> Category:
    permissions.require_system_admin(actor)
    category.active = active
    audit.record(actor, "category", category.id, "activate" if active else "deactivate")
    db.session.commit()
    return category


def set_budget(actor: User, category: Category, budget_s: int | None) -> Category:
    """How long a notice of this kind may hold a screen in one rotation (None: the default,
    two minutes); a notice may set its own."""
    from player import protocol

    permissions.require_system_admin(actor)
    if budget_s is not None and not protocol.MIN_BUDGET_S <= budget_s <= protocol.MAX_BUDGET_S:
        raise ValidationError({"budget_s": _(
            "Time per rotation must be %(min)s to %(max)s seconds.",
            min=protocol.MIN_BUDGET_S, max=protocol.MAX_BUDGET_S)})
    old = category.budget_s
    category.budget_s = budget_s
    audit.record(actor, "category", category.id, "update",
                 detail={"budget_s": budget_s, "from": old})
    db.session.commit()
    return category


STANDARD = [
    # key, name, English name, colour, sort
    ("party", "党务公开", "Party affairs", "#c62828", 10),
    ("village", "村务公开", "Village affairs", "#1565c0", 20),
    ("finance", "财务公开", "Finances", "#2e7d32", 30),
    ("policy", "惠民政策", "Policies and subsidies", "#ef6c00", 40),
    ("service", "便民服务", "Services", "#00838f", 50),
    ("notice", "通知公告", "Announcements", "#6a1b9a", 60),
]


def get(category_id: int) -> Category:
    """One category by id (added with the categories page)."""
    category = db.session.get(Category, category_id)
    if category is None:
        raise NotFound(_("No category with id %(id)s.", id=category_id))
    return category
