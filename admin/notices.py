"""Notices: dashboard, list, create, edit, detail, workflow actions and the review queue; and
residents' feedback. Every read and write goes through server.services; their errors become
messages on the page, never a crash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime, get_locale, to_user_timezone, to_utc
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from admin import bp
from admin.forms import ActionForm, AnswerForm, HideForm, NoticeForm, ReasonForm
from admin.guards import form_errors, login_required, me, page_arg
from server.labels import ACTION_LABELS, STATUS_LABELS
from server.models import (
    AlertStatus,
    Category,
    Feedback,
    Image,
    Notice,
    NoticeStatus,
    Region,
    Revision,
    RevisionState,
    Role,
    User,
)
from server.models.base import utcnow
from server.services import (
    alerts,
    categories,
    feedback,
    images,
    markup,
    notices,
    permissions,
    regions,
)
from server.services import screens as screen_service
from server.services.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ServiceError,
    ValidationError,
)
from server.services.notices import NoticeInput

F = TypeVar("F", bound=Callable[..., Any])
PER_PAGE = 30
REVIEW_PER_PAGE = 20  # each item shows its whole text
FEEDBACK_TABS = ("open", "answered", "hidden")

# What the list says about a new revision of a notice that is already live.
PENDING_EDIT_LABELS = {
    "draft": _l("edit in draft"),
    "submitted": _l("edit pending review"),
    "approved": _l("edit approved"),
    "scheduled": _l("edit scheduled"),
}
FEEDBACK_LABELS = {"open": _l("Unanswered"), "answered": _l("Answered"), "hidden": _l("Hidden")}


# --- helpers for templates -----------------------------------------------------------------


def fmt_dt(value: datetime | None) -> str:
    """A naive-UTC timestamp as local time (Asia/Shanghai), e.g. 2026-11-05 09:30."""
    if value is None:
        return "—"
    return format_datetime(value, "yyyy-MM-dd HH:mm")


def media_url(filename: str) -> str:
    """Where an uploaded picture is served (the residents' blueprint owns the route)."""
    try:
        return url_for("public.media", filename=filename)
    except BuildError:
        return "/media/" + filename


def category_name(category: Category) -> str:
    if str(get_locale() or "zh").startswith("en") and category.name_en:
        return category.name_en
    return category.name


def status_label(state: str) -> str:
    return str(STATUS_LABELS.get(str(state), state))


def pending_edit_label(notice: Notice) -> str | None:
    """'edit pending review' and friends, when a live notice has a new revision in the works."""
    if notice.live_revision is None or notice.pending_revision is None:
        return None
    label = PENDING_EDIT_LABELS.get(str(notice.pending_revision.state))
    return str(label) if label else None


@bp.context_processor
def _notice_helpers() -> dict[str, Any]:
    return {
        "Role": Role,
        "fmt_dt": fmt_dt,
        "media_url": media_url,
        "category_name": category_name,
        "status_label": status_label,
        "pending_edit_label": pending_edit_label,
        "action_label": lambda a: str(ACTION_LABELS.get(a, a)),
        "to_html": markup.to_html,
        "is_overdue": is_overdue,
        "budget_of": notices.budget_of,
        "releases_on_approval": notices.releases_on_approval,
    }


def is_overdue(notice: Notice) -> bool:
    """Approved, its publish time passed, and not live: someone must act (the list's badge)."""
    rev = notice.pending_revision
    return (rev is not None and rev.state == RevisionState.APPROVED
            and rev.publish_at is not None and rev.publish_at <= utcnow())


# --- errors --------------------------------------------------------------------------------


def _error_page(exc: ServiceError) -> tuple[str, int]:
    return (
        render_template("admin/notices/error.html", code=exc.status, message=exc.message),
        exc.status,
    )


def shows_service_errors(view: F) -> F:
    """A page the user may not see, or that does not exist, is a clean page with the reason."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except (NotFound, PermissionDenied, Conflict) as exc:
            return _error_page(exc)

    return cast(F, wrapped)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> tuple[str, int]:
    """The whole request was over MAX_CONTENT_LENGTH: Flask refused it before the view ran, so
    nothing was read or saved. Say so plainly, with the limits."""
    message = _(
        "What you sent is larger than %(total)s MB, so nothing was saved. Each picture may be "
        "at most %(each)s MB: go back, choose smaller pictures (or fewer at a time) and save "
        "again.",
        total=current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024),
        each=current_app.config["MAX_IMAGE_BYTES"] // (1024 * 1024),
    )
    return render_template("admin/notices/error.html", code=413, message=message), 413


def _visible_notice(user: User, notice_id: int) -> Notice:
    notice = notices.get_by_id(notice_id)
    if not notices.can(user, "view", notice):
        raise PermissionDenied(_("This notice is outside your regions."))
    return notice


def _is_editor(user: User) -> bool:
    return user.has_role(Role.EDITOR) or user.has_role(Role.ADMIN)


# --- dashboard and list --------------------------------------------------------------------


@bp.get("/")
@login_required
def index() -> str:
    user = me()
    recent, _n = notices.list_notices(user, per_page=8)
    is_reviewer = user.has_role(Role.REVIEWER) or user.has_role(Role.ADMIN)
    is_editor = _is_editor(user)
    # Counts, not lists: each is one COUNT however many notices the county has.
    counts = {
        "my_drafts": notices.count_notices(user, status="draft", created_by=user),
        "returned": notices.count_notices(user, status="returned", created_by=user),
        "to_review": notices.review_count(user) if is_reviewer else 0,
        "pending": 0 if is_reviewer else notices.count_notices(user, status="pending_review"),
        "to_publish": notices.count_notices(user, status="to_publish") if is_editor else 0,
        "overdue": notices.count_notices(user, status="overdue"),
        "scheduled": notices.count_notices(user, status="scheduled"),
        "published": notices.count_notices(user, status="published"),
        "open_feedback": feedback.count(user, "open") if is_editor else 0,
    }
    alert_home = None
    if user.has_role(Role.ALERT):
        shown = alerts.list_for(user, limit=50)
        alert_home = {
            "in_force": [a for a in shown if a.status == AlertStatus.ACTIVE],
            "to_confirm": [a for a in shown if alerts.may_confirm(user, a)],
        }
    return render_template(
        "admin/notices/dashboard.html",
        counts=counts,
        recent=recent,
        is_editor=is_editor,
        is_reviewer=is_reviewer,
        alert_home=alert_home,
    )


@bp.get("/notices")
@login_required
def notice_list() -> str:
    user = me()
    args = request.args
    status = args.get("status", "")
    if status not in STATUS_LABELS or status in ("live", "superseded"):
        status = ""
    cats = categories.all_()
    category = args.get("category", "")
    if category not in {c.key for c in cats}:
        category = ""
    tree = regions.tree_for(user)
    region_id = args.get("region", type=int)
    region = next((r for r in tree if r.id == region_id), None)
    q = (args.get("q") or "").strip()[:100]
    page = page_arg()
    rows, total = notices.list_notices(
        user,
        status=status or None,
        category=category or None,
        region=region,
        q=q or None,
        page=page,
        per_page=PER_PAGE,
    )
    pages = max((total + PER_PAGE - 1) // PER_PAGE, 1)
    filters = {"status": status, "category": category, "region": region.id if region else "",
               "q": q}
    return render_template(
        "admin/notices/list.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        statuses=[s for s in STATUS_LABELS if s not in ("live", "superseded")],
        categories=cats,
        tree=tree,
        min_depth=min((r.depth for r in tree), default=0),
        is_editor=_is_editor(user),
    )


# --- create and edit -----------------------------------------------------------------------


def _targetable(user: User) -> list[Region]:
    """Regions the user may aim notices at, in tree order."""
    return [r for r in regions.tree_for(user) if permissions.covers(user, Role.EDITOR, [r])]


def _local(value: datetime | None) -> datetime | None:
    return to_user_timezone(value).replace(tzinfo=None) if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    return to_utc(value) if value is not None else None


def _prepare(form: NoticeForm, user: User, rev: Revision | None) -> list[Region]:
    cats = categories.active()
    if rev is not None and rev.category not in cats:
        cats.append(rev.category)  # keep a retired category selectable on old notices
    form.category.choices = [("", _("Choose a category"))] + [
        (c.key, category_name(c)) for c in cats
    ]
    choices = _targetable(user)
    form.targets.choices = [(str(r.id), r.name) for r in choices]
    return choices


def _fill_from(form: NoticeForm, rev: Revision) -> None:
    form.title.data = rev.title
    form.body.data = rev.body
    form.category.data = rev.category.key
    form.targets.data = [str(r.id) for r in rev.targets]
    form.publish_at.data = _local(rev.publish_at)
    form.expire_at.data = _local(rev.expire_at)
    form.duration_s.data = rev.duration_s
    form.pinned.data = rev.pinned
    form.hold.data = rev.hold
    form.budget_s.data = rev.budget_s
    form.kept_images.data = ",".join(img.filename for img in rev.images)


def _kept_images(form: NoticeForm) -> list[Image]:
    """Pictures already accepted (listed by file name in a hidden field), minus those ticked
    for removal. Unknown names are dropped: the field comes from the browser."""
    removed = set(form.remove_images.data or [])
    kept: list[Image] = []
    for name in (form.kept_images.data or "").split(","):
        name = name.strip()
        if not name or name in removed:
            continue
        image = images.by_filename(name)
        if image is not None and image not in kept:
            kept.append(image)
    return kept


def _save(form: NoticeForm, user: User, notice: Notice | None) -> tuple[Notice | None, list[Image]]:
    """Store uploads, then create or update through the service. Returns the saved notice (None
    when the form must be shown again) and the pictures to show."""
    ok = form.validate()
    kept = _kept_images(form)
    upload_errors: list[str] = []
    for upload in request.files.getlist(form.images.name):
        if not upload or not upload.filename:
            continue
        try:
            image = images.save_upload(user, upload.stream, upload.filename)
        except ValidationError as exc:
            reason = exc.errors.get("images", exc.message)
            upload_errors.append(f"{upload.filename}: {reason}")
        else:
            if image not in kept:
                kept.append(image)
    # Accepted pictures stay with the form even when something else is wrong.
    form.kept_images.data = ",".join(img.filename for img in kept)
    form.remove_images.data = []
    if upload_errors:
        form.images.errors = [*list(form.images.errors or []), *upload_errors]
    data = NoticeInput(
        title=form.title.data or "",
        body=form.body.data or "",
        category=form.category.data or None,
        targets=[int(x) for x in form.targets.data or [] if str(x).isdigit()],
        publish_at=_utc(form.publish_at.data),
        expire_at=_utc(form.expire_at.data),
        duration_s=form.duration_s.data if form.duration_s.data is not None else -1,
        pinned=bool(form.pinned.data),
        hold=bool(form.hold.data),
        budget_s=form.budget_s.data,
        image_ids=[img.id for img in kept],
    )
    if not ok or upload_errors:
        # Say everything that is wrong at once, without saving anything.
        try:
            notices.validate(user, data)
        except ValidationError as exc:
            fresh = {k: v for k, v in exc.errors.items() if not getattr(form, k, None)
                     or not getattr(form, k).errors}
            form_errors(form, ValidationError(fresh))
        return None, kept
    try:
        if notice is None:
            notice = notices.create(user, data)
        else:
            notices.update(user, notice, data)
    except ValidationError as exc:
        form_errors(form, exc)
        return None, kept
    return notice, kept


def _render_form(
    form: NoticeForm, choices: list[Region], kept: list[Image], notice: Notice | None
) -> tuple[str, int] | str:
    page = render_template(
        "admin/notices/form.html",
        form=form,
        notice=notice,
        choices=choices,
        min_depth=min((r.depth for r in choices), default=0),
        chosen=set(form.targets.data or []),
        kept=kept,
        max_images=current_app.config["MAX_IMAGES_PER_NOTICE"],
        max_image_mb=current_app.config["MAX_IMAGE_BYTES"] // (1024 * 1024),
    )
    return (page, 422) if request.method == "POST" else page


@bp.route("/notices/new", methods=["GET", "POST"])
@login_required
@shows_service_errors
def notice_new() -> Response | tuple[str, int] | str:
    user = me()
    form = NoticeForm()
    choices = _prepare(form, user, None)
    if not choices:
        raise PermissionDenied(_("You have no regions to write notices for."))
    kept: list[Image] = []
    if request.method == "POST":
        saved, kept = _save(form, user, None)
        if saved is not None:
            flash(_("Saved as a draft. Submit it for review when it is ready."), "success")
            return redirect(url_for("admin.notice_detail", notice_id=saved.id))
        flash(_("The notice was not saved: please correct the marked fields."), "error")
    return _render_form(form, choices, kept, None)


@bp.route("/notices/<int:notice_id>/edit", methods=["GET", "POST"])
@login_required
@shows_service_errors
def notice_edit(notice_id: int) -> Response | tuple[str, int] | str:
    user = me()
    notice = _visible_notice(user, notice_id)
    if not notices.can(user, "edit", notice):
        raise PermissionDenied(_("You may not edit this notice: it is outside your regions."))
    rev = notice.current
    form = NoticeForm()
    choices = _prepare(form, user, rev)
    if request.method == "POST":
        was_live = notice.live_revision is not None
        saved, kept = _save(form, user, notice)
        if saved is not None:
            if was_live:
                flash(
                    _(
                        "Saved as a new revision. The published version stays on the screens "
                        "until this one is approved and published."
                    ),
                    "success",
                )
            else:
                flash(_("Saved as a draft. Submit it for review when it is ready."), "success")
            return redirect(url_for("admin.notice_detail", notice_id=notice.id))
        flash(_("The notice was not saved: please correct the marked fields."), "error")
    else:
        _fill_from(form, rev)
        kept = list(rev.images)
    return _render_form(form, choices, kept, notice)


# --- detail and workflow actions -----------------------------------------------------------


def _actions(user: User, notice: Notice) -> dict[str, bool]:
    """Which buttons to show: the user's rights (notices.can) and the notice's state."""
    pending = notice.pending_revision
    state = pending.state if pending is not None else None
    return {
        "edit": notices.can(user, "edit", notice),
        "submit": state == RevisionState.DRAFT and notices.can(user, "submit", notice),
        "approve": state == RevisionState.SUBMITTED and notices.can(user, "approve", notice),
        "reject": state in (RevisionState.SUBMITTED, RevisionState.APPROVED)
        and notices.can(user, "reject", notice),
        "publish": state == RevisionState.APPROVED and notices.can(user, "publish", notice),
        "withdraw": notice.status in (NoticeStatus.PUBLISHED, NoticeStatus.SCHEDULED)
        and notices.can(user, "withdraw", notice),
    }


def _render_detail(
    notice: Notice,
    reason_forms: dict[str, ReasonForm] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    user = me()
    forms = reason_forms or {}
    pending = notice.pending_revision
    page = render_template(
        "admin/notices/detail.html",
        notice=notice,
        live=notice.live_revision,
        pending=pending,
        current=notice.current,
        actions=_actions(user, notice),
        history=notices.history(notice),
        action_form=ActionForm(),
        reject_form=forms.get("reject") or ReasonForm(),
        withdraw_form=forms.get("withdraw") or ReasonForm(),
        now=utcnow(),
        feedback_counts=feedback.counts_for(notice),
        submitted_by_me=pending is not None and pending.submitted_by_id == user.id,
    )
    return page, status


@bp.get("/notices/<int:notice_id>")
@login_required
@shows_service_errors
def notice_detail(notice_id: int) -> tuple[str, int]:
    return _render_detail(_visible_notice(me(), notice_id))


def _already_approved(notice: Notice, number: int | None) -> bool:
    done = (RevisionState.APPROVED, RevisionState.SCHEDULED, RevisionState.LIVE,
            RevisionState.SUPERSEDED)
    return number is not None and any(
        r.number == number and r.state in done for r in notice.revisions
    )


def _back(notice: Notice, back: str | None) -> Response:
    if back == "review":
        return redirect(url_for("admin.review_queue"))
    return redirect(url_for("admin.notice_detail", notice_id=notice.id))


@bp.post("/notices/<int:notice_id>/<any(submit, approve, reject, publish, withdraw):action>")
@login_required
@shows_service_errors
def notice_action(notice_id: int, action: str) -> Response | tuple[str, int]:
    user = me()
    notice = _visible_notice(user, notice_id)
    if action in ("reject", "withdraw"):
        form: ActionForm | ReasonForm = ReasonForm()
    else:
        form = ActionForm()
    form.validate()  # CSRF is checked globally; this parses the revision number
    back = form.back.data
    try:
        if action == "submit":
            notices.submit(user, notice)
            flash(_("Submitted for review."), "success")
        elif action == "approve":
            number = form.revision.data
            try:
                notices.approve(user, notice, number)
            except Conflict as exc:
                if _already_approved(notice, number):
                    raise Conflict(
                        _("Revision %(n)s has already been approved.", n=number)
                    ) from exc
                raise
            pending = notice.pending_revision
            if notice.status == NoticeStatus.PUBLISHED and pending is None:
                flash(_("Approved and published: its publish time had come."), "success")
            elif pending is not None and pending.state == RevisionState.SCHEDULED:
                flash(_("Approved: it goes live by itself at %(when)s.",
                        when=fmt_dt(pending.publish_at)), "success")
            else:
                flash(_("Approved. An editor can now publish it."), "success")
        elif action == "reject":
            assert isinstance(form, ReasonForm)
            notices.reject(user, notice, form.reason.data or "")
            flash(_("Rejected and sent back to the editor with your reason."), "success")
        elif action == "publish":
            notices.publish(user, notice)
            if notice.status == NoticeStatus.SCHEDULED and notice.pending_revision is not None:
                flash(
                    _(
                        "Scheduled: it goes live at %(when)s.",
                        when=fmt_dt(notice.pending_revision.publish_at),
                    ),
                    "success",
                )
            elif notice.pending_revision is not None:
                flash(
                    _(
                        "The new revision is scheduled for %(when)s; the current one stays live "
                        "until then.",
                        when=fmt_dt(notice.pending_revision.publish_at),
                    ),
                    "success",
                )
            else:
                flash(_("Published: it is now on the screens of its regions."), "success")
        elif action == "withdraw":
            assert isinstance(form, ReasonForm)
            notices.withdraw(user, notice, form.reason.data or "")
            flash(_("Withdrawn: it is off the screens and its page says so."), "success")
    except ValidationError as exc:
        if action in ("reject", "withdraw"):
            assert isinstance(form, ReasonForm)
            form_errors(form, exc)
            flash(exc.errors.get("reason") or exc.message, "error")
            return _render_detail(notice, {action: form}, 422)
        for message in exc.errors.values():
            flash(message, "error")
    except (Conflict, PermissionDenied) as exc:
        flash(exc.message, "error")
    return _back(notice, back)


# --- review queue --------------------------------------------------------------------------


@bp.get("/review")
@login_required
def review_queue() -> str:
    user = me()
    page = page_arg()
    total = notices.review_count(user)
    pages = max((total + REVIEW_PER_PAGE - 1) // REVIEW_PER_PAGE, 1)
    page = min(page, pages)
    queue = notices.review_queue(user, limit=REVIEW_PER_PAGE,
                                 offset=(page - 1) * REVIEW_PER_PAGE)
    return render_template(
        "admin/notices/review.html",
        queue=queue,
        page=page,
        pages=pages,
        action_form=ActionForm(),
        reject_form=ReasonForm(),
        is_reviewer=user.has_role(Role.REVIEWER) or user.has_role(Role.ADMIN),
        now=utcnow(),
    )


# --- residents' feedback -------------------------------------------------------------------


def _feedback_item(user: User, feedback_id: int) -> Feedback:
    """A question the user may handle (the service applies the permission rules)."""
    return feedback.get_for(user, feedback_id)


@bp.get("/feedback")
@login_required
def feedback_inbox() -> str:
    user = me()
    tab = request.args.get("tab", "open")
    if tab not in FEEDBACK_TABS:
        tab = "open"
    items = feedback.inbox(user, tab)
    return render_template(
        "admin/feedback/inbox.html",
        items=items,
        screen_names=screen_service.names_by_code(
            {f.screen_code for f in items if f.screen_code}),
        tab=tab,
        tabs=[(t, str(FEEDBACK_LABELS[t])) for t in FEEDBACK_TABS],
        answer_form=AnswerForm(),
        hide_form=HideForm(),
        is_editor=_is_editor(user),
    )


@bp.post("/feedback/<int:feedback_id>/<any(answer, hide):action>")
@login_required
@shows_service_errors
def feedback_action(feedback_id: int, action: str) -> Response:
    user = me()
    item = _feedback_item(user, feedback_id)
    form: AnswerForm | HideForm = AnswerForm() if action == "answer" else HideForm()
    form.validate()
    tab = form.tab.data if form.tab.data in FEEDBACK_TABS else "open"
    try:
        if action == "answer":
            assert isinstance(form, AnswerForm)
            feedback.answer(user, item, form.answer.data or "")
            flash(_("Answered. The answer now shows on the notice's page."), "success")
        else:
            assert isinstance(form, HideForm)
            feedback.hide(user, item, form.reason.data or "")
            flash(_("Hidden. It stays in the archive with your reason."), "success")
    except ValidationError as exc:
        for message in exc.errors.values():
            flash(message, "error")
    except (Conflict, PermissionDenied) as exc:
        flash(exc.message, "error")
    return redirect(url_for("admin.feedback_inbox", tab=tab) + f"#q{item.id}")
