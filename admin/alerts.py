"""Emergency alerts (预警): the list, issuing (with a confirm step), the second person's
confirmation or rejection, updating, cancelling, CAP upload and download, and per alert the
proof of delivery: which screens acknowledged it, how fast, and which have not answered.

Users with the alert role act; administrators read. Every change goes through
server.services.alerts (or alert_cap for CAP), which checks the alert role on every target,
writes the audit log and tells the screens; their errors become messages on the page.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import to_user_timezone, to_utc
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin import bp
from admin.forms_alerts import EVENT_TYPES, AlertForm, CapUploadForm, ConfirmForm, ReasonForm
from admin.guards import form_errors, login_required, me
from admin.notices import shows_service_errors
from player import protocol
from server.extensions import db
from server.labels import ALERT_STATUS_LABELS, LEVEL_ALERT_NAMES, LEVEL_LABELS
from server.models import Alert, AlertStatus, Region, Role, User
from server.models.base import utcnow
from server.services import alert_cap, alerts, permissions, regions, users
from server.services import screens as screen_service
from server.services.alerts import AlertInput
from server.services.errors import PermissionDenied, ServiceError, ValidationError

Page = str | tuple[str, int] | Response
REFRESH_SECONDS = 3  # how often the detail page asks for the delivery table while in force


# --- helpers -------------------------------------------------------------------------------


def _reader(user: User) -> User:
    """Alert users act, administrators read; nobody else sees the alert pages."""
    return alerts.require_reader(user)


def alertable(user: User) -> list[Region]:
    """Regions `user` may alert, in tree order."""
    return [r for r in regions.tree_for(user) if permissions.covers(user, Role.ALERT, [r])]


def _visible(user: User, code: str) -> Alert:
    alert = alerts.get(code)
    if not alerts.can_see(user, alert):
        raise PermissionDenied(_("This alert is outside your regions."))
    return alert


def _acts_on(user: User, alert: Alert) -> bool:
    return permissions.covers(user, Role.ALERT, alert.targets)


def seconds(ms: int | None) -> str:
    """A latency as people read it: "0.8 s" (秒)."""
    if ms is None:
        return "—"
    return _("%(s)s s", s=f"{ms / 1000:.1f}")


def level_style(level: int) -> str:
    color = protocol.LEVEL_COLORS.get(level, "#666")
    text = "#111" if level == 3 else "#fff"  # yellow needs dark text
    return f"background:{color};color:{text};border-color:{color}"


def level_label(level: int) -> str:
    return str(LEVEL_LABELS.get(level, level))


def alert_status_label(status: AlertStatus | str) -> str:
    return str(ALERT_STATUS_LABELS.get(str(status), str(status)))


@bp.app_context_processor
def _alert_helpers() -> dict[str, Any]:
    return {
        "level_style": level_style,
        "level_color": lambda level: protocol.LEVEL_COLORS.get(level, "#666"),
        "level_label": level_label,
        "alert_status_label": alert_status_label,
    }


def _local(value: datetime | None) -> datetime | None:
    return to_user_timezone(value).replace(tzinfo=None) if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None else None


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _prepare(form: AlertForm | CapUploadForm, user: User) -> list[Region]:
    choices = alertable(user)
    form.targets.choices = [(str(r.id), r.name) for r in choices]
    return choices


def _input(form: AlertForm) -> AlertInput:
    return AlertInput(
        level=form.level.data or 0,
        event=form.event.data or "",
        title=form.title.data or "",
        text=form.text.data or "",
        instruction=form.instruction.data or "",
        sender_name=form.sender_name.data or "",
        targets=[int(x) for x in form.targets.data or [] if str(x).isdigit()],
        starts_at=_utc(form.starts_at.data),
        expires_at=_utc(form.expires_at.data),
    )


def _target_names(form: AlertForm, choices: list[Region]) -> list[Region]:
    chosen = set(form.targets.data or [])
    return [r for r in choices if str(r.id) in chosen]


def _screens_under(targets: list[Region]) -> int:
    """How many screens an alert on `targets` would take over (for the confirm step)."""
    return alerts.count_targeted(targets)


def _render_form(form: AlertForm, choices: list[Region], alert: Alert | None, *,
                 confirm: bool = False, status: int = 200) -> tuple[str, int]:
    targets = _target_names(form, choices)
    page = render_template(
        "admin/alerts/form.html",
        form=form,
        alert=alert,
        choices=choices,
        min_depth=min((r.depth for r in choices), default=0),
        chosen=set(form.targets.data or []),
        event_types=EVENT_TYPES,
        levels=[(n, str(LEVEL_ALERT_NAMES[n])) for n in (1, 2, 3, 4)],
        confirm=confirm,
        targets=targets,
        screen_count=_screens_under(targets) if confirm else 0,
        online_count=alerts.count_targeted_online(targets) if confirm else 0,
        two_person=alerts.two_person_rule(),
        default_hours=int(alerts.DEFAULT_DURATION.total_seconds() // 3600),
    )
    return page, status


def _check(user: User, form: AlertForm, alert: Alert | None) -> bool:
    """Every problem at once, without saving (the service's own validation)."""
    ok = form.validate()
    data = _input(form)
    if alert is not None:
        data.starts_at = data.starts_at or alert.starts_at
        data.expires_at = data.expires_at or alert.expires_at
    try:
        alerts.validate(user, data)
    except ValidationError as exc:
        fresh = {k: v for k, v in exc.errors.items()
                 if not getattr(form, k, None) or not getattr(form, k).errors}
        form_errors(form, ValidationError(fresh))
        return False
    return ok


def _issue_or_update(user: User, alert: Alert | None) -> Page:
    """The form's POST: check, then show the confirm step, then act (action=issue)."""
    form = AlertForm()
    choices = _prepare(form, user)
    action = request.form.get("action", "")
    if not _check(user, form, alert):
        flash(_("Nothing was sent: please correct the marked fields."), "error")
        return _render_form(form, choices, alert, status=422)
    if action != "issue":  # first the summary: what goes on how many screens
        return _render_form(form, choices, alert, confirm=action != "edit")
    try:
        if alert is None:
            alert = alerts.issue(user, _input(form), source="admin")
        else:
            alert = alerts.update(user, alert, _input(form))
    except ValidationError as exc:
        db.session.rollback()
        form_errors(form, exc)
        return _render_form(form, choices, alert, status=422)
    if alert.status == AlertStatus.PENDING:
        flash(_("The alert is waiting for a second person to confirm it: it is not on the "
                "screens yet."), "warning")
    elif alert.proposal:
        flash(_("The change raises the level or reaches more regions: it waits for a second "
                "person to confirm it. The screens show the alert as it was until then."),
              "warning")
    elif alert.version > 1:
        flash(_("Alert updated: the screens show version %(n)s now.", n=alert.version),
              "success")
    else:
        flash(_("Alert issued: the screens are taking it over now."), "success")
    return redirect(url_for("admin.alert_detail", code=alert.code))


# --- list ----------------------------------------------------------------------------------


ORDER = {AlertStatus.ACTIVE: 0, AlertStatus.PENDING: 1}


@bp.get("/alerts")
@login_required
@shows_service_errors
def alert_list() -> Page:
    user = _reader(me())
    rows = []
    now = utcnow()
    for alert in alerts.list_for(user, limit=100):
        report = (alerts.delivery_report(alert, limit=0)
                  if alert.status != AlertStatus.PENDING else None)
        rows.append({"alert": alert, "report": report,
                     "in_force": alert.status == AlertStatus.ACTIVE and alert.expires_at > now})
    rows.sort(key=lambda r: (ORDER.get(r["alert"].status, 2), r["alert"].level
                             if r["alert"].status in ORDER else 0))
    return render_template(
        "admin/alerts/list.html",
        rows=rows,
        can_issue=bool(alertable(user)),
        in_force=sum(1 for r in rows if r["in_force"]),
        waiting=sum(1 for r in rows if alerts.awaiting(r["alert"]) is not None),
        role_changes=users.alert_role_changes(),
    )


# --- issue and update ----------------------------------------------------------------------


@bp.route("/alerts/new", methods=["GET", "POST"])
@login_required
@shows_service_errors
def alert_new() -> Page:
    user = _reader(me())
    if not alertable(user):
        raise PermissionDenied(_("Only users with the alert role may issue emergency alerts."))
    if request.method == "POST":
        return _issue_or_update(user, None)
    form = AlertForm(formdata=None)
    choices = _prepare(form, user)
    now = to_user_timezone(utcnow()).replace(tzinfo=None)
    form.expires_at.data = _minute(now + alerts.DEFAULT_DURATION)
    form.sender_name.data = ""
    return _render_form(form, choices, None)


@bp.route("/alerts/<code>/edit", methods=["GET", "POST"])
@login_required
@shows_service_errors
def alert_edit(code: str) -> Page:
    user = _reader(me())
    alert = _visible(user, code)
    if not _acts_on(user, alert):
        raise PermissionDenied(_("You may not update this alert: it is outside your regions."))
    if alert.status not in (AlertStatus.ACTIVE, AlertStatus.PENDING):
        flash(_("This alert has ended: issue a new one instead."), "error")
        return redirect(url_for("admin.alert_detail", code=alert.code))
    if request.method == "POST":
        return _issue_or_update(user, alert)
    form = AlertForm(formdata=None)
    choices = _prepare(form, user)
    form.level.data = str(alert.level)
    for name in ("event", "title", "text", "instruction", "sender_name"):
        getattr(form, name).data = getattr(alert, name)
    form.targets.data = [str(r.id) for r in alert.targets]
    form.starts_at.data = _local(alert.starts_at) if alert.starts_at > utcnow() else None
    form.expires_at.data = _local(alert.expires_at)
    return _render_form(form, choices, alert)


# --- one alert -----------------------------------------------------------------------------


def _just_ended(alert: Alert) -> bool:
    return alert.ended_at is not None and utcnow() - alert.ended_at < timedelta(minutes=10)


def _delivery(alert: Alert) -> dict[str, Any]:
    report = alerts.delivery_report(alert)
    now = utcnow()
    rows = [
        {
            "screen": row.screen,
            "online": screen_service.is_online(row.screen, now),
            "delivery": row.delivery,
            "acknowledged": row.acknowledged,
            "latency": seconds(row.delivery.latency_ms) if row.delivery else "—",
        }
        for row in report.rows
    ]
    return {"report": report, "rows": rows, "waiting": report.waiting_count,
            "hidden": report.targeted - len(rows)}


def _change(alert: Alert) -> dict[str, Any] | None:
    """The change waiting on an alert in force, for the page: what it would show."""
    p = alert.proposal
    if not p or alert.status != AlertStatus.ACTIVE:
        return None
    regions = db.session.scalars(select(Region).where(Region.id.in_(p["targets"])))
    by = [db.session.get(User, uid) for uid in p.get("by", [])]
    return {"version": p["version"], "level": p["level"], "event": p["event"],
            "title": p["title"], "text": p["text"], "instruction": p["instruction"],
            "regions": sorted(r.full_name for r in regions),
            "by": "、".join(u.name for u in by if u is not None)}


def _render_detail(alert: Alert, *, forms: dict[str, Any] | None = None,
                   status: int = 200) -> tuple[str, int]:
    user = me()
    forms = forms or {}
    acts = _acts_on(user, alert)
    live = alert.status == AlertStatus.ACTIVE
    pending = alert.status == AlertStatus.PENDING
    waiting = alerts.awaiting(alert)
    confirm_form = forms.get("confirm") or ConfirmForm(formdata=None)
    confirm_form.version.data = waiting
    page = render_template(
        "admin/alerts/detail.html",
        alert=alert,
        delivery=_delivery(alert) if not pending else None,
        can={
            "edit": acts and (live or pending),
            "cancel": acts and (live or pending),
            "confirm": acts and alerts.may_confirm(user, alert),
            "reject": acts and waiting is not None,
        },
        mine=user.id in alerts.authors_of_waiting(alert),
        waiting=waiting,
        change=_change(alert),
        confirm_form=confirm_form,
        reject_form=forms.get("reject") or ReasonForm(formdata=None, prefix="reject"),
        cancel_form=forms.get("cancel") or ReasonForm(formdata=None, prefix="cancel"),
        # (after its end too, for a while: the screens taking it down come in)
        refresh=REFRESH_SECONDS if live or _just_ended(alert) else 0,
        public_url=alerts.alert_url(alert.code),
    )
    return page, status


@bp.get("/alerts/<code>")
@login_required
@shows_service_errors
def alert_detail(code: str) -> Page:
    return _render_detail(_visible(_reader(me()), code))


@bp.get("/alerts/<code>/delivery")
@login_required
@shows_service_errors
def alert_delivery(code: str) -> Response:
    """The delivery counts and table (HTML fragment) for the detail page's poll."""
    alert = _visible(_reader(me()), code)
    delivery = _delivery(alert)
    html = render_template("admin/alerts/_delivery.html", alert=alert, delivery=delivery)
    report = delivery["report"]
    response = jsonify(
        status=alert.status.value,
        acknowledged=report.acknowledged,
        targeted=report.targeted,
        waiting=delivery["waiting"],
        html=html,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _failed(alert: Alert, name: str, form: Any, exc: ServiceError) -> tuple[str, int]:
    db.session.rollback()
    form.form_errors.append(exc.message)
    return _render_detail(alert, forms={name: form}, status=exc.status)


@bp.post("/alerts/<code>/confirm")
@login_required
@shows_service_errors
def alert_confirm(code: str) -> Page:
    user = _reader(me())
    alert = _visible(user, code)
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _render_detail(alert, forms={"confirm": form}, status=400)
    if not form.checked.data:
        form.checked.errors = [_("Tick the box to confirm.")]
        return _render_detail(alert, forms={"confirm": form}, status=422)
    try:
        alerts.confirm(user, alert, form.version.data)
    except ServiceError as exc:
        return _failed(alert, "confirm", form, exc)
    flash(_("Confirmed: the screens show version %(n)s now.", n=alert.version), "success")
    return redirect(url_for("admin.alert_detail", code=alert.code))


def _with_reason(code: str, name: str) -> tuple[User, Alert, ReasonForm, Page | None]:
    user = _reader(me())
    alert = _visible(user, code)
    form = ReasonForm(prefix=name)
    if not form.validate_on_submit():
        return user, alert, form, _render_detail(alert, forms={name: form}, status=400)
    if not (form.reason.data or "").strip():
        form.reason.errors = [_("Say why.")]
    if not form.checked.data:
        form.checked.errors = [_("Tick the box to confirm.")]
    if form.reason.errors or form.checked.errors:
        return user, alert, form, _render_detail(alert, forms={name: form}, status=422)
    return user, alert, form, None


@bp.post("/alerts/<code>/reject")
@login_required
@shows_service_errors
def alert_reject(code: str) -> Page:
    user, alert, form, page = _with_reason(code, "reject")
    if page is not None:
        return page
    was_change = alert.status == AlertStatus.ACTIVE
    try:
        alerts.reject(user, alert, form.reason.data or "")
    except ServiceError as exc:
        return _failed(alert, "reject", form, exc)
    flash(_("Rejected: the change was not made.") if was_change
          else _("Rejected: the alert was not shown."), "success")
    return redirect(url_for("admin.alert_detail", code=alert.code))


@bp.post("/alerts/<code>/cancel")
@login_required
@shows_service_errors
def alert_cancel(code: str) -> Page:
    user, alert, form, page = _with_reason(code, "cancel")
    if page is not None:
        return page
    try:
        alerts.cancel(user, alert, form.reason.data or "")
    except ServiceError as exc:
        return _failed(alert, "cancel", form, exc)
    flash(_("Cancelled: the alert is leaving every screen now."), "success")
    return redirect(url_for("admin.alert_detail", code=alert.code))


@bp.get("/alerts/<code>/cap.xml")
@login_required
@shows_service_errors
def alert_cap_xml(code: str) -> Response:
    alert = _visible(_reader(me()), code)
    response = current_app.response_class(alert_cap.export_cap(alert),
                                          mimetype="application/cap+xml")
    response.headers["Content-Disposition"] = f'attachment; filename="alert-{alert.code}.xml"'
    return response


@bp.get("/alerts/id/<int:alert_id>")
@login_required
@shows_service_errors
def alert_by_id(alert_id: int) -> Response:
    """The audit log links alerts by id."""
    alert = db.session.get(Alert, alert_id)
    code = alert.code if alert is not None else str(alert_id)
    return redirect(url_for("admin.alert_detail", code=code))


# --- CAP upload ----------------------------------------------------------------------------


def _render_upload(form: CapUploadForm, choices: list[Region], status: int = 200) -> Page:
    return render_template(
        "admin/alerts/upload.html",
        form=form,
        choices=choices,
        min_depth=min((r.depth for r in choices), default=0),
        chosen=set(form.targets.data or []),
        max_kb=int(current_app.config["MAX_CAP_BYTES"]) // 1024,
        two_person=alerts.two_person_rule(),
    ), status


@bp.route("/alerts/import", methods=["GET", "POST"])
@login_required
@shows_service_errors
def alert_import() -> Page:
    user = _reader(me())
    if not alertable(user):
        raise PermissionDenied(_("Only users with the alert role may issue emergency alerts."))
    form = CapUploadForm() if request.method == "POST" else CapUploadForm(formdata=None)
    choices = _prepare(form, user)
    if request.method == "GET":
        return _render_upload(form, choices)
    if not form.validate_on_submit():
        return _render_upload(form, choices, 400)
    upload = form.file.data
    if upload is None or not getattr(upload, "filename", ""):
        form.file.errors = [_("Choose a CAP file.")]
        return _render_upload(form, choices, 422)
    limit = int(current_app.config["MAX_CAP_BYTES"])
    data = upload.stream.read(limit + 1)
    targets: list[str | int] = [int(x) for x in form.targets.data or [] if str(x).isdigit()]
    try:
        alert = alert_cap.import_cap(user, data, targets=targets, source="cap")
    except ValidationError as exc:
        db.session.rollback()
        for key, message in exc.errors.items():
            field = form.targets if key == "targets" else form.file
            field.errors = [*list(field.errors or []), f"{message}" if key == "targets"
                            else f"{key}: {message}"]
        return _render_upload(form, choices, 422)
    except ServiceError as exc:
        db.session.rollback()
        form.file.errors = [*list(form.file.errors or []), exc.message]
        return _render_upload(form, choices, exc.status if exc.status != 403 else 422)
    flash(_("CAP message applied to alert %(code)s (version %(n)s, %(status)s).",
            code=alert.code, n=alert.version, status=alert_status_label(alert.status)),
          "warning" if alert.status == AlertStatus.PENDING else "success")
    return redirect(url_for("admin.alert_detail", code=alert.code))
