"""API: emergency alerts — list, read (with the proof of delivery), issue (JSON, or a CAP 1.2
message as the body), confirm, reject, update, cancel, and export as CAP XML.

Every change goes through server.services.alerts (or alert_cap for CAP), which checks the
token user's alert role on every target, writes the audit log and tells the screens.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from player import protocol
from server.api import bp, serializers
from server.api.auth import api_user
from server.api.envelope import BadRequest, Fields, format_time, json_body, ok
from server.extensions import db
from server.models import Alert, AlertStatus, Region, User
from server.models.base import utcnow
from server.services import alert_cap, alerts
from server.services import screens as screen_service
from server.services.alerts import AlertInput
from server.services.cap import CapError
from server.services.errors import PermissionDenied, ServiceError, ValidationError

ALERT_FIELDS = ("level", "event", "title", "text", "instruction", "sender_name", "targets",
                "starts_at", "expires_at")
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
STATUS_FILTERS = [s.value for s in AlertStatus]
LIMIT_DEFAULT, LIMIT_MAX = 100, 200


class CapRefused(ServiceError):
    """A CAP message refused: 422 with the CAP field named in `fields`."""

    status = 422

    def __init__(self, message: str, errors: dict[str, str]) -> None:
        super().__init__(message)
        self.errors = errors


class TooLarge(ServiceError):
    status = 413


def find(code: str, user: User) -> Alert:
    alerts.require_reader(user)  # before anything: a plain editor learns nothing, not even 404
    alert = alerts.get(code)
    if not alerts.can_see(user, alert):
        raise PermissionDenied(_("You may not see this alert: it is outside your regions."))
    return alert


# --- answers -------------------------------------------------------------------------------


def summary(alert: Alert) -> dict[str, Any]:
    return {
        "code": alert.code,
        "url": alerts.alert_url(alert.code),
        "status": alert.status.value,
        "level": alert.level,
        "level_name": protocol.LEVEL_NAMES[alert.level],
        "color": protocol.LEVEL_COLORS[alert.level],
        "event": alert.event,
        "title": alert.title,
        "targets": [r.code for r in alert.targets],
        "version": alert.version,
        "starts_at": format_time(alert.starts_at),
        "expires_at": format_time(alert.expires_at),
        "updated_at": format_time(alert.updated_at),
    }


SCREENS_DEFAULT = 100  # per-screen rows in an answer, unless ?screens=N or ?screens=all


def _screens_limit() -> int | None:
    """?screens=N (0 for counts only) or ?screens=all; the unanswered screens come first."""
    value = request.args.get("screens")
    if value is None or value == "":
        return SCREENS_DEFAULT
    if value == "all":
        return None
    if value.isdigit():
        return int(value)
    raise BadRequest(_("Some query parameters are wrong."),
                     {"screens": _("A number of screens, or 'all'.")})


def delivery(alert: Alert) -> dict[str, Any]:
    """Acknowledged / targeted screens and a row per screen (the unanswered first, as many as
    ?screens= asks)."""
    report = alerts.delivery_report(alert, limit=_screens_limit())
    now = utcnow()
    screens = []
    for row in report.rows:
        d = row.delivery
        screens.append({
            "code": row.screen.code,
            "name": row.screen.name,
            "region": row.screen.region.code,
            "online": screen_service.is_online(row.screen, now),
            "acknowledged": row.acknowledged,
            "acked_at": format_time(d.acked_at) if d else None,
            "latency_ms": d.latency_ms if d and row.acknowledged else None,
            "attempts": d.attempts if d else 0,
            "last_sent_at": format_time(d.last_sent_at) if d else None,
        })
    return {
        "targeted": report.targeted,
        "acknowledged": report.acknowledged,
        "waiting": report.waiting_count,
        "screens": screens,
        "screens_complete": len(screens) == report.targeted,
    }


def awaiting_confirmation(alert: Alert) -> dict[str, Any] | None:
    """What waits for a second person (two-person rule): the version to name when confirming,
    who wrote it (they may not confirm it), and for an alert in force the proposed change."""
    version = alerts.awaiting(alert)
    if version is None:
        return None
    by = [db.session.get(User, uid) for uid in alerts.authors_of_waiting(alert)]
    change = None
    if alert.proposal:
        p = alert.proposal
        codes = db.session.scalars(select(Region.code).where(Region.id.in_(p["targets"])))
        change = {"level": p["level"], "event": p["event"], "title": p["title"],
                  "text": p["text"], "instruction": p["instruction"],
                  "sender_name": p["sender_name"], "starts_at": p["starts_at"],
                  "expires_at": p["expires_at"], "targets": sorted(codes)}
    return {"version": version, "by": [serializers.user_ref(u) for u in by if u is not None],
            "change": change}


def full(alert: Alert) -> dict[str, Any]:
    out = summary(alert)
    out.update({
        "text": alert.text,
        "instruction": alert.instruction or "",
        "sender_name": alert.sender_name or "",
        "identifier": alert.identifier,
        "sender": alert.sender,
        "references": [list(r) for r in alert.references or ()],
        "cap_status": alert.cap_status,
        "source": alert.source,
        "created_at": format_time(alert.created_at),
        "issued_at": format_time(alert.issued_at),
        "ended_at": format_time(alert.ended_at),
        "end_reason": alert.end_reason or None,
        "issued_by": serializers.user_ref(alert.issued_by),
        "confirmed_by": serializers.user_ref(alert.confirmed_by),
        "ended_by": serializers.user_ref(alert.ended_by),
        "awaiting_confirmation": awaiting_confirmation(alert),
        "cap_url": url_for("api.get_alert_cap", code=alert.code),
        "delivery": None if alert.status == AlertStatus.PENDING else delivery(alert),
    })
    return out


def _answer(alert: Alert, status: int = 200) -> Response:
    headers = {"Location": url_for("api.get_alert", code=alert.code)} if status == 201 else None
    return ok(full(alert), status, headers)


# --- reading -------------------------------------------------------------------------------


@bp.get("/alerts")
def list_alerts() -> Response:
    """Alerts visible to the token's user, newest first."""
    user = api_user()
    status = request.args.get("status")
    if status is not None and status not in STATUS_FILTERS:
        raise BadRequest(_("Some query parameters are wrong."),
                         {"status": _("One of: %(values)s.", values=", ".join(STATUS_FILTERS))})
    rows = alerts.list_for(user, status=status, limit=LIMIT_DEFAULT)
    return ok({"items": [summary(a) for a in rows]})


@bp.get("/alerts/<code>")
def get_alert(code: str) -> Response:
    """The whole alert with its delivery report."""
    return _answer(find(code, api_user()))


@bp.get("/alerts/<code>.cap")
def get_alert_cap(code: str) -> Response:
    """The alert as CAP 1.2 XML."""
    alert = find(code, api_user())
    return current_app.response_class(alert_cap.export_cap(alert),
                                      mimetype="application/cap+xml")


# --- writing -------------------------------------------------------------------------------


def _region_ids(codes: list[str], errors: dict[str, str]) -> list[str | int]:
    found: list[str | int] = []
    missing = []
    for code in codes:
        region = db.session.scalar(select(Region).where(Region.code == code))
        if region is None:
            missing.append(code)
        else:
            found.append(region.id)
    if missing:
        errors["targets"] = _("Unknown region: %(codes)s.", codes=", ".join(missing))
    return found


def _input(data: dict[str, Any], base: AlertInput | None = None) -> AlertInput:
    """An AlertInput from JSON (`base`, for an update, keeps the fields not sent)."""
    out = base or AlertInput()
    f = Fields(data)
    if "level" in f or base is None:
        level = data.get("level", 0)
        if isinstance(level, bool) or not isinstance(level, int | str):
            f.errors["level"] = _("Choose a level from I (red) to IV (blue).")
        else:
            out.level = level
    for name in ("event", "title", "text", "instruction", "sender_name"):
        if name in f or base is None:
            setattr(out, name, f.string(name))
    if "targets" in f or base is None:
        out.targets = _region_ids(f.strings("targets"), f.errors)
    if "starts_at" in f:
        out.starts_at = f.time("starts_at")
    if "expires_at" in f:
        out.expires_at = f.time("expires_at")
    if f.errors:
        raise ValidationError(f.errors)
    return out


def _cap_body() -> bytes:
    limit = int(current_app.config["MAX_CAP_BYTES"])
    if (request.content_length or 0) > limit:
        raise TooLarge(_("CAP message too large: %(n)s bytes, the limit is %(max)s (%(kb)s KB).",
                         n=request.content_length, max=limit, kb=limit // 1024))
    data = request.stream.read(limit + 1)
    if not data.strip():
        raise BadRequest(_("Send the CAP message as the request body."))
    return data


def _import(user: User, data: bytes, alert: Alert | None = None) -> Alert:
    codes = [c for c in (request.args.get("targets") or "").split(",") if c.strip()]
    errors: dict[str, str] = {}
    targets = _region_ids([c.strip() for c in codes], errors)
    if errors:
        raise ValidationError(errors)
    try:
        return alert_cap.import_cap(user, data, targets=targets, source="api")
    except CapError as exc:
        db.session.rollback()
        raise CapRefused(exc.message, {exc.field or "cap": exc.message}) from None


@bp.post("/alerts")
def create_alert() -> Response:
    """Issue an alert: JSON fields, or a CAP 1.2 message (Alert, Update or Cancel) as the body
    with Content-Type application/cap+xml."""
    user = api_user()
    if request.mimetype in CAP_TYPES:
        alert = _import(user, _cap_body())
        return _answer(alert, 201 if alert.version == 1 and alert.status in (
            AlertStatus.ACTIVE, AlertStatus.PENDING) else 200)
    data = _input(json_body(ALERT_FIELDS))
    alert = alerts.issue(user, data, source="api")
    return _answer(alert, 201)


def _current(alert: Alert) -> AlertInput:
    return AlertInput(
        level=alert.level, event=alert.event, title=alert.title, text=alert.text,
        instruction=alert.instruction or "", sender_name=alert.sender_name or "",
        targets=[r.id for r in alert.targets], starts_at=None, expires_at=alert.expires_at,
    )


@bp.post("/alerts/<code>/update")
def update_alert(code: str) -> Response:
    """Change some fields (the others keep their values): a new version on every screen."""
    user = api_user()
    alert = find(code, user)
    data = _input(json_body(ALERT_FIELDS), _current(alert))
    return _answer(alerts.update(user, alert, data))


@bp.post("/alerts/<code>/confirm")
def confirm_alert(code: str) -> Response:
    """The second person confirms the version they read (two-person rule): a pending alert
    goes into force, or the change waiting on an alert in force is made."""
    user = api_user()
    alert = find(code, user)
    data = json_body(("version",))
    return _answer(alerts.confirm(user, alert, data.get("version")))


def _reason() -> str:
    data = json_body(("reason",), required=False)
    f = Fields(data)
    reason = f.string("reason")
    f.check()
    return reason


@bp.post("/alerts/<code>/reject")
def reject_alert(code: str) -> Response:
    """The second person refuses a pending alert."""
    user = api_user()
    alert = find(code, user)
    return _answer(alerts.reject(user, alert, _reason()))


@bp.post("/alerts/<code>/cancel")
def cancel_alert(code: str) -> Response:
    """End the alert at once on every screen."""
    user = api_user()
    alert = find(code, user)
    return _answer(alerts.cancel(user, alert, _reason()))
