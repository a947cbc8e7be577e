"""Screens as the admin and residents see them: what a screen shows, previews of any revision,
and issuing a screen a new device token.

Read helpers on top of services.screens, services.playlist and services.revisions (which own the
realtime side); the writes here go through the same audit log and signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import or_, select

from server import signals
from server.extensions import db
from server.models import Notice, Region, Revision, Screen, User
from server.services import audit, revisions
from server.services import notices as notice_service
from server.services import screens as screen_service

DEFAULT_SIZE = (1920, 1080)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def get_by_id(screen_id: int) -> Screen | None:
    return db.session.get(Screen, screen_id)


def screens_under(targets: list[Region]) -> list[Screen]:
    """Screens (not revoked) in the subtrees of `targets`: those that would show a notice
    aimed at them."""
    if not targets:
        return []
    stmt = (
        select(Screen)
        .join(Region, Region.id == Screen.region_id)
        .where(
            or_(*[Region.path.startswith(t.path) for t in targets]),
            Screen.revoked_at.is_(None),
        )
    )
    return list(db.session.scalars(stmt))


def preview_sizes(rev: Revision) -> list[tuple[int, int]]:
    """The distinct resolutions of the screens `rev` is aimed at, largest first; 1920×1080
    when no screen is there yet."""
    sizes = {(s.width, s.height) for s in screens_under(list(rev.targets))}
    return sorted(sizes, key=lambda wh: (-wh[0] * wh[1], wh)) or [DEFAULT_SIZE]


@dataclass(frozen=True)
class Status:
    """What the admin list says about one screen."""

    screen: Screen
    online: bool
    revision: int  # what the server says the screen should be at
    reported: int | None  # what the player last said it has
    showing: Notice | None
    showing_code: str | None
    store_error: str | None = None  # a save on the box failing (disk full...), as reported
    clock_offset_s: int | None = None  # the server's clock minus the box's, as reported

    @property
    def up_to_date(self) -> bool:
        return self.reported is not None and self.reported >= self.revision


def status(screen: Screen, now: datetime | None = None) -> Status:
    state = screen.state or {}
    code = state.get("showing") if isinstance(state.get("showing"), str) else None
    reported = state.get("revision")
    store_error = state.get("store_error")
    offset = state.get("clock_offset_s")
    return Status(
        screen=screen,
        online=screen_service.is_online(screen, now),
        revision=revisions.screen_revision(screen),
        reported=reported if isinstance(reported, int) and not isinstance(reported, bool)
        else None,
        showing=notice_service.get_by_code(code) if code else None,
        showing_code=code,
        store_error=store_error if isinstance(store_error, str) and store_error else None,
        clock_offset_s=offset if isinstance(offset, int) and not isinstance(offset, bool)
        else None,
    )


def shown_now(screen: Screen) -> list[Notice]:
    """The notices `screen` plays now: live ones aimed at its region chain, pinned first."""
    return notice_service.live_for_regions([screen.region_id])


def reissue_token(actor: User, screen: Screen) -> str:
    """A new device token for `screen` (shown once; only its hash is kept). The old token stops
    working at once and a connection made with it is closed; a revoked screen is back in use."""
    screen_service._require_scope(actor, screen.region)
    prefix, token = screen_service._new_token()
    sid = screen.connected_sid
    screen.token_hash = screen_service.hash_secret(token)
    screen.token_prefix = prefix
    screen.revoked_at = None
    screen.online = False
    screen.connected_sid = None
    audit.record(actor, "screen", screen.id, "token", detail={"prefix": prefix})
    revisions.next_value(screen_service.SCREENS_COUNTER)
    db.session.commit()
    # The connection still running on the old token must end (the player hears "revoked").
    signals.screen_changed.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        screen_id=screen.id,
        sid=sid,
        reason="revoked",
    )
    return token
