"""Writing to the audit log. The caller commits, so the event and the change land together."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, func, not_, or_, select

from server.extensions import db
from server.models import AuditEvent, Feedback, Region, Revision, Role, RoleGrant, User
from server.models.notices import revision_targets
from server.services import permissions
from server.services.errors import PermissionDenied


def record(
    actor: User | None,
    entity: str,
    entity_id: int | None,
    action: str,
    *,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event to the session (actor None means the system, e.g. the scheduler)."""
    event = AuditEvent(
        user_id=actor.id if actor else None,
        entity=entity,
        entity_id=entity_id,
        action=action,
        from_state=str(from_state),
        to_state=str(to_state),
        reason=reason,
        detail=detail or {},
    )
    db.session.add(event)
    return event


# --- reading (added with the audit log page) -----------------------------------------------

ENTITIES = ("notice", "user", "region", "category", "token", "feedback", "login", "screen",
            "cadence")
PER_PAGE = 50


@dataclass
class AuditPage:
    """One page of audit events, newest first, and how many match in all."""

    events: list[AuditEvent]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def _scope(actor: User) -> ColumnElement[bool]:
    """What a regional admin may read: events on notices aimed inside their subtrees (and the
    feedback on those), on regions inside them, on the users they manage, and everything those
    users (and the admin) did."""
    roots = actor.regions_for(Role.ADMIN)
    inside = or_(*[Region.path.startswith(root.path) for root in roots])
    region_ids = select(Region.id).where(inside)
    notice_ids = (
        select(Revision.notice_id)
        .join(revision_targets, revision_targets.c.revision_id == Revision.id)
        .join(Region, Region.id == revision_targets.c.region_id)
        .where(inside)
    )
    feedback_ids = select(Feedback.id).where(Feedback.notice_id.in_(notice_ids))
    granted = select(RoleGrant.user_id).join(Region, RoleGrant.region_id == Region.id)
    managed = select(User.id).where(
        User.id.in_(granted.where(inside)), User.id.not_in(granted.where(not_(inside)))
    )
    return or_(
        and_(AuditEvent.entity == "notice", AuditEvent.entity_id.in_(notice_ids)),
        and_(AuditEvent.entity == "feedback", AuditEvent.entity_id.in_(feedback_ids)),
        and_(AuditEvent.entity == "region", AuditEvent.entity_id.in_(region_ids)),
        and_(AuditEvent.entity == "user", AuditEvent.entity_id.in_(managed)),
        AuditEvent.user_id.in_(managed),
        AuditEvent.user_id == actor.id,
    )


def search(
    actor: User,
    *,
    entity: str | None = None,
    action: str | None = None,
    username: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> AuditPage:
    """Audit events newest first, for administrators. A system admin reads everything; a
    regional admin what `_scope` allows. `since` (inclusive) and `until` (exclusive) are naive
    UTC; `username` matches part of the actor's username, case-insensitively."""
    if not actor.is_active or not actor.has_role(Role.ADMIN):
        raise PermissionDenied(_("Only administrators may read the audit log."))
    conditions: list[ColumnElement[bool]] = []
    if not permissions.is_system_admin(actor):
        conditions.append(_scope(actor))
    if entity:
        conditions.append(AuditEvent.entity == entity)
    if action:
        conditions.append(AuditEvent.action == action)
    if username:
        conditions.append(
            AuditEvent.user_id.in_(
                select(User.id).where(
                    func.lower(User.username).contains(username.strip().lower(), autoescape=True)
                )
            )
        )
    if since is not None:
        conditions.append(AuditEvent.at >= since)
    if until is not None:
        conditions.append(AuditEvent.at < until)
    total = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(*conditions)
    ) or 0
    page = max(1, page)
    events = db.session.scalars(
        select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return AuditPage(events=list(events), total=total, page=page, per_page=per_page)
