"""Writing to the audit log. The caller commits, so the event and the change land together."""

from __future__ import annotations

from typing import Any

from server.extensions import db
from server.models import AuditEvent, User


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
