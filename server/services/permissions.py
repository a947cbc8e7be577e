"""Who may do what, where. Every service asks these before it changes anything.

Rules (docs/architecture.md has the matrix):
- A grant of a role on a region covers that region and everything below it.
- ADMIN implies EDITOR and REVIEWER powers in its subtree, and manages regions and users there.
- ALERT (emergency alerts) is never implied: only an explicit alert grant issues alerts.
- A notice is inside a subtree when every one of its targets is.
- Editors write, submit, publish and withdraw; reviewers approve and reject (never their own
  submission); editors and reviewers alike may publish and withdraw what they may review.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import gettext as _

from server.models import Region, Role, User
from server.services.errors import PermissionDenied


def _grant_roots(user: User, role: Role) -> list[Region]:
    if role == Role.ALERT:  # emergency alerts need the alert role itself, even for an admin
        return [g.region for g in user.grants if g.role == Role.ALERT]
    return [g.region for g in user.grants if g.role in (role, Role.ADMIN)]


def grant_roots(user: User, role: Role) -> list[Region]:
    """The tops of the subtrees where `user` may act as `role` (ADMIN counts, except for
    alerts): what `covers` checks against, for services that check in SQL."""
    return _grant_roots(user, role)


def covers(user: User, role: Role, regions: Iterable[Region]) -> bool:
    """True when every region lies inside a subtree where `user` holds `role` (or ADMIN)."""
    if not user.is_active:
        return False
    roots = _grant_roots(user, role)
    regions = list(regions)
    if not regions or not roots:
        return False
    return all(any(root.contains(r) for root in roots) for r in regions)


def sees(user: User, regions: Iterable[Region]) -> bool:
    """True when `user` may read something aimed at `regions`: a target inside one of the
    user's subtrees, or a target that covers the user's own region (a county-wide notice is
    visible to every town editor)."""
    if not user.is_active:
        return False
    roots = [g.region for g in user.grants]
    return any(root.contains(r) or r.contains(root) for r in regions for root in roots)


def is_system_admin(user: User) -> bool:
    """An admin grant on a root region: may manage categories and the whole tree."""
    return user.is_active and any(
        g.role == Role.ADMIN and g.region.parent_id is None for g in user.grants
    )


def require(user: User, role: Role, regions: Iterable[Region], what: str) -> None:
    """Raise PermissionDenied naming the action unless `covers` holds."""
    regions = list(regions)
    if not covers(user, role, regions):
        names = "、".join(r.name for r in regions) or "—"
        raise PermissionDenied(
            _(
                "You may not %(what)s for %(regions)s: it is outside your regions.",
                what=what,
                regions=names,
            )
        )


def require_system_admin(user: User) -> None:
    if not is_system_admin(user):
        raise PermissionDenied(_("Only a system administrator may do this."))
