"""The region tree: create, rename, move; subtree queries use the materialised path."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select

from server.extensions import db
from server.models import Region, Role, User
from server.services import audit, permissions
from server.services.errors import Conflict, NotFound, ValidationError

CODE_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$")
NAME_MAX = 80


def get(code_or_id: str | int) -> Region:
    region = (
        db.session.get(Region, code_or_id)
        if isinstance(code_or_id, int)
        else db.session.scalar(select(Region).where(Region.code == code_or_id))
    )
    if region is None:
        raise NotFound(_("No region %(code)s.", code=code_or_id))
    return region


def roots() -> list[Region]:
    return list(
        db.session.scalars(select(Region).where(Region.parent_id.is_(None)).order_by(Region.code))
    )


def subtree(region: Region) -> list[Region]:
    """The region and every region below it, in tree order (by path)."""
    return list(
        db.session.scalars(
            select(Region).where(Region.path.startswith(region.path)).order_by(Region.path)
        )
    )


def tree_for(user: User) -> list[Region]:
    """Every region inside any of the user's subtrees, each once, in tree order."""
    seen: dict[int, Region] = {}
    for grant in user.grants:
        for region in subtree(grant.region):
            seen.setdefault(region.id, region)
    return sorted(seen.values(), key=lambda r: [int(x) for x in r.path.strip("/").split("/")])


def _validate(code: str, name: str, *, existing: Region | None = None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not CODE_RE.match(code or ""):
        errors["code"] = _("A code is 1–32 letters, digits, '-' or '_'.")
    else:
        clash = db.session.scalar(select(Region).where(Region.code == code))
        if clash is not None and clash is not existing:
            errors["code"] = _(
                "The code %(code)s is already used by %(name)s.", code=code, name=clash.name
            )
    name = (name or "").strip()
    if not name:
        errors["name"] = _("A name is required.")
    elif len(name) > NAME_MAX:
        errors["name"] = _("At most %(max)s characters.", max=NAME_MAX)
    return errors


def create(actor: User | None, code: str, name: str, parent: Region | None = None) -> Region:
    """Add a region. A root needs a system admin (or no actor: the CLI and demo)."""
    if actor is not None:
        if parent is None:
            permissions.require_system_admin(actor)
        else:
            permissions.require(actor, Role.ADMIN, [parent], _("add regions"))
    errors = _validate(code, name)
    if errors:
        raise ValidationError(errors)
    region = Region(code=code.strip(), name=name.strip(), parent=parent)
    db.session.add(region)
    db.session.flush()
    region.path = (parent.path if parent else "/") + f"{region.id}/"
    region.depth = parent.depth + 1 if parent else 0
    audit.record(actor, "region", region.id, "create", detail={"code": code, "name": name})
    db.session.commit()
    return region


def update(
    actor: User, region: Region, *, code: str, name: str, parent: Region | None = None
) -> Region:
    """Rename, recode or move a region (with everything below it)."""
    permissions.require(actor, Role.ADMIN, [region], _("change regions"))
    errors = _validate(code, name, existing=region)
    if errors:
        raise ValidationError(errors)
    region.code, region.name = code.strip(), name.strip()
    if parent is not region.parent and parent is not None:
        if region.contains(parent):
            raise Conflict(_("A region cannot move inside itself."))
        permissions.require(actor, Role.ADMIN, [parent], _("move regions"))
        old_path = region.path
        new_path = parent.path + f"{region.id}/"
        shift = parent.depth + 1 - region.depth
        for node in subtree(region):
            node.path = new_path + node.path[len(old_path) :]
            node.depth += shift
        region.parent = parent
    audit.record(actor, "region", region.id, "update", detail={"code": code, "name": name})
    db.session.commit()
    return region


# --- reading for the admin pages (added with the regions page) -----------------------------


def all_regions() -> list[Region]:
    """Every region, parents before children (siblings in no particular order)."""
    return list(db.session.scalars(select(Region).order_by(Region.depth, Region.code)))


def visible_to(user: User) -> list[Region]:
    """The regions `user` may look at in the admin: the whole forest for a system admin, else
    every region inside one of their subtrees."""
    if permissions.is_system_admin(user):
        return all_regions()
    return tree_for(user)


def administered_by(user: User) -> list[Region]:
    """The regions where `user` may add, change or grant: inside their ADMIN subtrees (the whole
    forest for a system admin)."""
    if permissions.is_system_admin(user):
        return all_regions()
    seen: dict[int, Region] = {}
    for root in user.regions_for(Role.ADMIN):
        for region in subtree(root):
            seen.setdefault(region.id, region)
    return list(seen.values())
