"""The audit log, for administrators: who did what to which notice, alert, user or screen.

Everything is shown as people read it: names instead of ids and region codes, states and
actions by their labels, times in the county's time zone; the action filter offers the labels
it shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms import SelectChoice

from admin import bp
from admin.forms_people import AuditFilterForm
from admin.guards import login_required, me, page_arg
from admin.people import _require_admin
from server.api.envelope import YEARS
from server.extensions import db
from server.labels import ACTION_LABELS, ROLE_LABELS, STATE_LABELS, label
from server.models import Alert, AuditEvent, Category, Notice, Region, Screen, User
from server.services import audit

ENTITY_LABELS = {
    "notice": _l("Notice"),
    "alert": _l("Emergency alert"),
    "user": _l("User"),
    "region": _l("Region"),
    "category": _l("Category"),
    "cadence": _l("Disclosure cadence"),
    "token": _l("API token"),
    "feedback": _l("Feedback"),
    "login": _l("Login"),
    "session": _l("Session"),
    "screen": _l("Screen"),
}
# Detail keys as people read them; others are shown as they are.
DETAIL_LABELS = {
    "revision": _l("Revision"),
    "title": _l("Title"),
    "name": _l("Name"),
    "username": _l("Username"),
    "role": _l("Role"),
    "region": _l("Region"),
    "grants": _l("Roles"),
    "from": _l("From"),
    "to": _l("To"),
    "publish_at": _l("Publish at"),
    "replaces": _l("Replaces revision"),
    "version": _l("Version"),
    "level": _l("Level"),
    "code": _l("Code"),
    "prefix": _l("Token"),
    "ip": _l("Address"),
    "remember": _l("Remember me"),
    "reason": _l("Reason"),
}
REGION_KEYS = ("region", "from", "to")  # keys whose value may be a region code
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]00:00)?$")
NAMED = {  # entity: (model, the attribute people know it by)
    "notice": (Notice, None),
    "alert": (Alert, "title"),
    "user": (User, "name"),
    "region": (Region, "name"),
    "category": (Category, "name"),
    "screen": (Screen, "name"),
}


def _utc_start(day: date) -> datetime:
    """The start of a local calendar day as naive UTC (what the database stores)."""
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def _entity_link(event: AuditEvent) -> str | None:
    if event.entity_id is None:
        return None
    if event.entity == "notice":
        return url_for("admin.notice_detail", notice_id=event.entity_id)
    if event.entity == "feedback" and isinstance(event.detail.get("notice"), int):
        return url_for("admin.notice_detail", notice_id=event.detail["notice"])
    if event.entity in ("user", "session"):
        return url_for("admin.user_edit", user_id=event.entity_id)
    if event.entity == "region":
        return url_for("admin.region_edit", region_id=event.entity_id)
    if event.entity == "category":
        return url_for("admin.category_list")
    if event.entity == "screen":
        return url_for("admin.screen_detail", screen_id=event.entity_id)
    if event.entity == "alert":
        alert = db.session.get(Alert, event.entity_id)  # loaded by _names: no query
        return url_for("admin.alert_detail", code=alert.code) if alert is not None else None
    return None


def _names(events: Iterable[AuditEvent]) -> dict[tuple[str, int], str]:
    """What each event's subject is called (a notice's current title, a user's name...), a
    few queries for the whole page."""
    wanted: dict[str, set[int]] = {}
    for e in events:
        if e.entity_id is not None:
            kind = "user" if e.entity == "session" else e.entity
            wanted.setdefault(kind, set()).add(e.entity_id)
    names: dict[tuple[str, int], str] = {}
    for kind, ids in wanted.items():
        if kind not in NAMED:
            continue
        model, attr = NAMED[kind]
        for row in db.session.scalars(select(model).where(model.id.in_(ids))):
            names[(kind, row.id)] = row.current.title if kind == "notice" else getattr(row, attr)
    for (kind, entity_id), name in list(names.items()):
        if kind == "user":
            names[("session", entity_id)] = name
    return names


def _region_names(events: Iterable[AuditEvent]) -> dict[str, str]:
    """Names of the regions the events' details name by code (a region, a move's ends, the
    "role@code" of a new user's grants): one query for the page."""
    codes: set[str] = set()
    for e in events:
        for key, value in (e.detail or {}).items():
            if key in REGION_KEYS and isinstance(value, str) and value.isdigit():
                codes.add(value)
            elif key == "grants" and isinstance(value, list):
                codes.update(str(g).partition("@")[2] for g in value)
    codes.discard("")
    if not codes:
        return {}
    return dict(db.session.execute(
        select(Region.code, Region.name).where(Region.code.in_(codes))).all())


def _value_text(key: str, value: Any, regions: dict[str, str]) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list | tuple):
        return "、".join(_value_text(key, v, regions) for v in value) or "—"
    text = str(value)
    if key in REGION_KEYS and text in regions:
        return regions[text]
    if key == "role":
        return label(ROLE_LABELS, text)
    if "@" in text and key == "grants":  # editor@371399 → 编辑 @ 清源县
        role, _sep, code = text.partition("@")
        return f"{label(ROLE_LABELS, role)} @ {regions.get(code, code)}"
    if ISO_TIME.match(text):
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return format_datetime(moment, "yyyy-MM-dd HH:mm")
    return text[:80] + ("…" if len(text) > 80 else "")


def _detail_text(detail: dict[str, Any], regions: dict[str, str]) -> str:
    """`label: value · label: value`, with names for region codes and local times."""
    parts = []
    for key, value in (detail or {}).items():
        if key == "notice":
            continue  # the link says which notice
        parts.append(f"{label(DETAIL_LABELS, key)}: {_value_text(key, value, regions)}")
    return " · ".join(parts)


@bp.get("/audit")
@login_required
def audit_log() -> Any:
    actor = me()
    _require_admin(actor)
    form = AuditFilterForm(request.args)
    form.entity.choices = [
        SelectChoice("", _("All")),
        *(SelectChoice(k, str(v)) for k, v in ENTITY_LABELS.items()),
    ]
    form.action.choices = [
        SelectChoice("", _("All")),
        *sorted((SelectChoice(k, str(v)) for k, v in ACTION_LABELS.items()),
                key=lambda c: c.label),
    ]
    page = page_arg()
    filters: dict[str, Any] = {}
    if form.validate():  # bad filters (an unknown entity, a malformed date) show as errors
        since, until = form.since.data, form.until.data
        for field in (form.since, form.until):
            if field.data and not YEARS[0] <= field.data.year <= YEARS[1]:
                field.errors = [_("Choose a day between the years %(low)s and %(high)s.",
                                  low=YEARS[0], high=YEARS[1])]
                since = until = None
        filters = {
            "entity": form.entity.data or None,
            "action": form.action.data or None,
            "username": (form.username.data or "").strip() or None,
            "since": _utc_start(since) if since else None,
            "until": _utc_start(until + timedelta(days=1)) if until else None,
        }
    result = audit.search(actor, page=page, **filters)
    names = _names(result.events)
    regions = _region_names(result.events)
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "admin/audit/list.html",
        form=form,
        result=result,
        rows=[(e, _entity_link(e), names.get((e.entity, e.entity_id or 0)),
               _detail_text(e.detail, regions)) for e in result.events],
        entity_labels=ENTITY_LABELS,
        state_label=lambda s: label(STATE_LABELS, s),
        page_url=lambda n: url_for("admin.audit_log", page=n, **args),
    )
