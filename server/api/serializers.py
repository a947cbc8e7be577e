"""Models → JSON objects. One function per resource; the OpenAPI schemas mirror these."""

from __future__ import annotations

from typing import Any

from flask import current_app

from server.api.envelope import format_time
from server.models import AuditEvent, Category, Image, Notice, Region, Revision, User
from server.services import markup


def public_url(path: str) -> str:
    """An absolute URL on the residents' side (what QR codes print)."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def user_ref(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "name": user.name}


def me(user: User) -> dict[str, Any]:
    return {
        **(user_ref(user) or {}),
        "roles": sorted({g.role.value for g in user.grants}),
        "grants": [
            {"role": g.role.value, "region": region_ref(g.region)}
            for g in sorted(user.grants, key=lambda g: (g.region.path, g.role.value))
        ],
    }


def region_ref(region: Region) -> dict[str, Any]:
    return {"code": region.code, "name": region.name}


def region(region: Region, by_id: dict[int, Region] | None = None) -> dict[str, Any]:
    """A region with its place in the tree. `by_id` (every region) saves a query per ancestor."""
    ids = [int(x) for x in region.path.strip("/").split("/") if x]
    if by_id is not None:
        chain = [by_id[i] for i in ids if i in by_id]
    else:
        chain = [*region.ancestors(), region]
    parent = chain[-2] if len(chain) > 1 else None
    return {
        "code": region.code,
        "name": region.name,
        "parent": parent.code if parent is not None else None,
        "depth": region.depth,
        "level": region.level_name,
        "path": [r.code for r in chain],
        "full_name": " · ".join(r.name for r in chain),
    }


def category(cat: Category) -> dict[str, Any]:
    return {"key": cat.key, "name": cat.name, "name_en": cat.name_en, "color": cat.color}


def image(img: Image) -> dict[str, Any]:
    return {
        "id": img.id,
        "url": public_url("/media/" + img.filename),
        "width": img.width,
        "height": img.height,
        "mime": img.mime,
        "size": img.size,
    }


def revision(rev: Revision) -> dict[str, Any]:
    return {
        "number": rev.number,
        "state": rev.state.value,
        "title": rev.title,
        "body": rev.body,
        "body_html": str(markup.to_html(rev.body)),
        "category": rev.category.key,
        "targets": [r.code for r in rev.targets],
        "publish_at": format_time(rev.publish_at),
        "expire_at": format_time(rev.expire_at),
        "duration_s": rev.duration_s,
        "pinned": rev.pinned,
        "hold": rev.hold,
        "budget_s": rev.budget_s,
        "images": [image(i) for i in rev.images],
        "created_at": format_time(rev.created_at),
        "created_by": user_ref(rev.created_by),
        "submitted_at": format_time(rev.submitted_at),
        "submitted_by": user_ref(rev.submitted_by),
        "reviewed_at": format_time(rev.reviewed_at),
        "reviewed_by": user_ref(rev.reviewed_by),
        "reject_reason": rev.reject_reason or None,
    }


def _links(notice: Notice) -> dict[str, Any]:
    return {
        "url": public_url("/n/" + notice.code),
        "qr_url": public_url(f"/n/{notice.code}/qr.png"),
    }


def notice_summary(notice: Notice) -> dict[str, Any]:
    """What the list shows: enough to pick a notice, without the body or history."""
    rev = notice.current
    return {
        "id": notice.id,
        "code": notice.code,
        "status": notice.status.value,
        **_links(notice),
        "title": rev.title,
        "category": rev.category.key,
        "targets": [r.code for r in rev.targets],
        "revision": rev.number,
        "revision_state": rev.state.value,
        "live_revision": notice.live_revision.number if notice.live_revision else None,
        "updated_at": format_time(notice.updated_at),
    }


def event(ev: AuditEvent) -> dict[str, Any]:
    detail = ev.detail or {}
    return {
        "at": format_time(ev.at),
        "action": ev.action,
        "from": ev.from_state or None,
        "to": ev.to_state or None,
        "reason": ev.reason or None,
        "revision": detail.get("revision"),
        "user": user_ref(ev.user),
    }


def notice(notice: Notice, history: list[AuditEvent]) -> dict[str, Any]:
    """The whole notice: its state, the revision being worked on, the live one if different,
    and every audit event."""
    rev = notice.current
    live = notice.live_revision
    return {
        "id": notice.id,
        "code": notice.code,
        "status": notice.status.value,
        **_links(notice),
        "created_at": format_time(notice.created_at),
        "created_by": user_ref(notice.created_by),
        "updated_at": format_time(notice.updated_at),
        "first_published_at": format_time(notice.first_published_at),
        "published_at": format_time(notice.published_at),
        "ended_at": format_time(notice.ended_at),
        "withdraw_reason": notice.withdraw_reason or None,
        "reject_reason": rev.reject_reason or None,
        "revision": revision(rev),
        "live_revision": revision(live) if live is not None and live is not rev else None,
        "live_revision_number": live.number if live is not None else None,
        "history": [event(e) for e in history],
    }
