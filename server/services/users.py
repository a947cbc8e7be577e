"""Users, passwords, role grants and API tokens."""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, not_, or_, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from server.extensions import db
from server.labels import ROLE_LABELS, label
from server.models import ApiToken, AuditEvent, Region, Role, RoleGrant, User
from server.models.base import utcnow
from server.services import audit, permissions, sessions
from server.services.errors import NotFound, PermissionDenied, ValidationError

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
PASSWORD_MIN = 10
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"
# Checked against when the username is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def get(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("No user with id %(id)s.", id=user_id))
    return user


def by_username(username: str) -> User | None:
    """The user of this name, whatever its case: `Admin` and `admin` are one user."""
    return db.session.scalar(
        select(User).where(func.lower(User.username) == (username or "").lower()))


@functools.cache
def _common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def authenticate(username: str, password: str) -> User | None:
    """The user if the password matches and the account is active, else None."""
    user = by_username((username or "").strip())
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or "") or not user.active:
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def _check_password(password: str, username: str = "") -> str | None:
    """Why `password` will not do, or None: at least PASSWORD_MIN characters, not the username
    (nor containing it), not one of the common passwords shipped in server/data."""
    password = password or ""
    if len(password) < PASSWORD_MIN:
        return _("A password needs at least %(n)s characters.", n=PASSWORD_MIN)
    name = (username or "").strip().lower()
    if name and name in password.lower():
        return _("A password must not contain the username.")
    if password.lower() in _common_passwords():
        return _("This password is one of the most common ones: choose another.")
    return None


def _check_grants(actor: User | None, grants: Sequence[tuple[Role, Region]]) -> None:
    if actor is None:
        return
    for role, region in grants:
        if not permissions.covers(actor, Role.ADMIN, [region]):
            raise PermissionDenied(
                _(
                    "You may not grant %(role)s on %(region)s: it is outside your regions.",
                    role=label(ROLE_LABELS, role.value),
                    region=region.name,
                )
            )


def may_grant_alert(actor: User | None) -> bool:
    """Who may give or take the alert role (docs/alerts.md, "Who"): an administrator of the
    county itself (the root region), a username in CUNPING_ALERT_GRANTORS, or the command
    line (`actor` None). A town administrator may not: it and a user it creates would be
    the "two persons" of the two-person rule."""
    if actor is None:
        return True
    listed = current_app.config.get("ALERT_GRANTORS") or ()
    return permissions.is_system_admin(actor) or (
        actor.is_active and actor.has_role(Role.ADMIN) and actor.username in listed)


def _check_alert_grants(actor: User | None, user: User | None,
                        before: set[tuple[Role, int]], after: set[tuple[Role, int]]) -> None:
    changed = {g for g in before ^ after if g[0] == Role.ALERT}
    if not changed:
        return
    if not may_grant_alert(actor):
        raise PermissionDenied(_("Only an administrator of the county may give or take the "
                                 "alert role."))
    if actor is not None and user is not None and actor.id == user.id \
            and any(g in after for g in changed):
        raise PermissionDenied(_("Nobody may give themselves the alert role: ask another "
                                 "administrator of the county."))


def _audit_grants(actor: User | None, user: User, before: set[tuple[Role, int]],
                  after: set[tuple[Role, int]]) -> None:
    """One audit event per role given or taken (the alert role's are shown to alert users)."""
    codes = {r.id: r.code for r in db.session.scalars(
        select(Region).where(Region.id.in_({rid for _r, rid in before | after})))}
    for action, grants in (("grant", after - before), ("remove_grant", before - after)):
        for role, region_id in sorted(grants, key=lambda g: (g[0].value, g[1])):
            audit.record(actor, "user", user.id, action,
                         detail={"username": user.username, "role": role.value,
                                 "region": codes.get(region_id)})


def alert_role_changes(limit: int = 20) -> list[dict[str, Any]]:
    """The latest grants and removals of the alert role, newest first, for every alert user
    to see who may now issue or confirm alerts: {"at", "action", "actor", "user", "region"}
    (names; the actor None for the command line)."""
    events = [e for e in db.session.scalars(
        select(AuditEvent).where(AuditEvent.entity == "user",
                                 AuditEvent.action.in_(("grant", "remove_grant")))
        .order_by(AuditEvent.id.desc()).limit(limit * 10))
        if (e.detail or {}).get("role") == Role.ALERT.value][:limit]
    regions = {r.code: r.full_name for r in db.session.scalars(
        select(Region).where(Region.code.in_({e.detail.get("region") for e in events})))}
    people = {u.id: u.name for u in db.session.scalars(
        select(User).where(User.id.in_({e.entity_id for e in events})))}
    return [{"at": e.at, "action": e.action, "actor": e.user.name if e.user else None,
             "user": people.get(e.entity_id, e.detail.get("username")),
             "region": regions.get(e.detail.get("region"), e.detail.get("region"))}
            for e in events]


def new_user_errors(username: str, password: str, display_name: str = "") -> dict[str, str]:
    """What is wrong with these fields for a new user (empty when nothing): `create` checks
    the same, and a form can ask first to name every problem at once."""
    errors: dict[str, str] = {}
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        errors["username"] = _("3–64 letters, digits, '.', '_' or '-'.")
    elif by_username(username) is not None:
        errors["username"] = _("The username %(name)s is taken.", name=username)
    if (msg := _check_password(password, username)) is not None:
        errors["password"] = msg
    if len(display_name or "") > 80:
        errors["display_name"] = _("At most %(max)s characters.", max=80)
    return errors


def create(
    actor: User | None,
    username: str,
    password: str,
    *,
    display_name: str = "",
    grants: Sequence[tuple[Role, Region]] = (),
) -> User:
    """Add a user. `actor` None is the CLI (create-admin, demo)."""
    if actor is not None and not actor.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only administrators manage users."))
    username = (username or "").strip()
    errors = new_user_errors(username, password, display_name)
    if errors:
        raise ValidationError(errors)
    _check_grants(actor, grants)
    wanted = {(role, region.id) for role, region in grants}
    _check_alert_grants(actor, None, set(), wanted)
    user = User(
        username=username,
        display_name=display_name.strip(),
        password_hash=generate_password_hash(password),
    )
    user.grants = [RoleGrant(role=role, region=region) for role, region in grants]
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # the same name, in any case, created a moment ago (the index)
        db.session.rollback()
        raise ValidationError(
            {"username": _("The username %(name)s is taken.", name=username)}) from None
    audit.record(
        actor,
        "user",
        user.id,
        "create",
        detail={"username": username, "grants": [f"{r.value}@{g.code}" for r, g in grants]},
    )
    _audit_grants(actor, user, set(), wanted)
    db.session.commit()
    return user


def manageable(actor: User, user: User) -> bool:
    """An admin manages users whose every grant lies inside the admin's subtrees."""
    if permissions.is_system_admin(actor):
        return True
    return bool(user.grants) and all(
        permissions.covers(actor, Role.ADMIN, [g.region]) for g in user.grants
    )


def update(
    actor: User,
    user: User,
    *,
    display_name: str,
    active: bool,
    grants: Sequence[tuple[Role, Region]],
    password: str = "",
) -> User:
    """Change a user's name, state, roles and (if given) password."""
    if not manageable(actor, user):
        raise PermissionDenied(_("You may not change this user."))
    if user.id == actor.id and not active:
        raise ValidationError({"active": _("You cannot deactivate yourself.")})
    if password and (msg := _check_password(password, user.username)) is not None:
        raise ValidationError({"password": msg})
    _check_grants(actor, grants)
    wanted = {(role, region.id) for role, region in grants}
    before = {(g.role, g.region_id) for g in user.grants}
    _check_alert_grants(actor, user, before, wanted)
    user.display_name = display_name.strip()[:80]
    user.active = active
    user.grants = [g for g in user.grants if (g.role, g.region_id) in wanted] + [
        RoleGrant(role=role, region=region)
        for role, region in grants
        if (role, region.id) not in {(g.role, g.region_id) for g in user.grants}
    ]
    if password:
        user.password_hash = generate_password_hash(password)
    if password or not active:  # whoever held a session of theirs no longer may
        sessions.end_all(user, actor=actor, reason="password" if password else "deactivated")
    audit.record(
        actor,
        "user",
        user.id,
        "update",
        detail={
            "active": active,
            "grants": [f"{r.value}@{g.code}" for r, g in grants],
            "password_changed": bool(password),
        },
    )
    _audit_grants(actor, user, before, wanted)
    db.session.commit()
    return user


def change_password(user: User, old: str, new: str) -> None:
    if not check_password_hash(user.password_hash, old or ""):
        raise ValidationError({"old_password": _("The current password is wrong.")})
    if (msg := _check_password(new, user.username)) is not None:
        raise ValidationError({"password": msg})
    user.password_hash = generate_password_hash(new)
    audit.record(user, "user", user.id, "password")
    # Every other session ends: whoever else knew the old password is logged out.
    sessions.end_all(user, actor=user, reason="password", keep_key=user.session_key)
    db.session.commit()


# --- API tokens ---------------------------------------------------------------------------


def _hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token; the secret is returned once and only its hash is kept."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationError({"name": _("Give the token a name (at most 80 characters).")})
    prefix = secrets.token_hex(4)
    secret = f"cp_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(user=user, name=name, prefix=prefix, token_hash=_hash_token(secret))
    db.session.add(token)
    db.session.flush()
    audit.record(user, "token", token.id, "create", detail={"name": name, "prefix": prefix})
    db.session.commit()
    return token, secret


def user_for_token(secret: str) -> User | None:
    """The active user owning an unrevoked token with this secret."""
    if not secret or not secret.startswith("cp_"):
        return None
    digest = _hash_token(secret)
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    if not hmac.compare_digest(token.token_hash, digest):
        return None
    token.last_used_at = utcnow()
    db.session.commit()
    return token.user


def revoke_token(actor: User, token: ApiToken) -> None:
    if token.user_id != actor.id and not manageable(actor, token.user):
        raise PermissionDenied(_("You may not revoke this token."))
    token.revoked_at = utcnow()
    audit.record(actor, "token", token.id, "revoke", detail={"prefix": token.prefix})
    db.session.commit()


# --- reading and preferences for the admin pages (added with the users page) --------------

LOCALES = ("zh", "en")


def list_manageable(actor: User) -> list[User]:
    """The users `actor` may manage (see `manageable`), by username. Admins only."""
    if not actor.is_active or not actor.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only administrators manage users."))
    stmt = select(User).order_by(User.username)
    if not permissions.is_system_admin(actor):
        roots = actor.regions_for(Role.ADMIN)
        inside = or_(*[Region.path.startswith(root.path) for root in roots])
        granted = select(RoleGrant.user_id).join(Region, RoleGrant.region_id == Region.id)
        stmt = stmt.where(
            User.id.in_(granted.where(inside)), User.id.not_in(granted.where(not_(inside)))
        )
    return list(db.session.scalars(stmt))


def set_locale(user: User, locale: str | None) -> None:
    """The user's interface language ("zh", "en"; empty: the default)."""
    if locale and locale not in LOCALES:
        raise ValidationError({"locale": _("Choose one of the offered languages.")})
    user.locale = locale or None
    db.session.commit()


def get_token(token_id: int) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(_("No API token with id %(id)s.", id=token_id))
    return token


def tokens_of(user: User) -> list[ApiToken]:
    """A user's API tokens, newest first (revoked ones too: they are history)."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )
