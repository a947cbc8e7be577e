"""API: notices — list, read, create, change, and move through the review workflow.

Every change goes through server.services.notices, which checks the token user's permissions,
writes the audit log and commits. This module only reads and checks the request.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from server.api import bp, serializers
from server.api.auth import api_user
from server.api.envelope import BadRequest, Fields, json_body, ok, page_of, query_int
from server.extensions import db
from server.models import Notice, NoticeStatus, Region, User
from server.services import categories, notices, regions
from server.services.errors import NotFound, PermissionDenied, ValidationError
from server.services.notices import NoticeInput

NOTICE_FIELDS = (
    "title",
    "body",
    "category",
    "targets",
    "publish_at",
    "expire_at",
    "duration_s",
    "pinned",
    "hold",
    "budget_s",
    "image_ids",
)
STATUS_FILTERS = [s.value for s in NoticeStatus] + ["pending_review"]
PER_PAGE_DEFAULT, PER_PAGE_MAX = 30, 100
Q_MAX = 200


def find(ref: str, user: User) -> Notice:
    """A notice by id (all digits, tried first) or by its public code, visible to `user`."""
    is_id = ref.isascii() and ref.isdigit() and len(ref) < 10
    notice = db.session.get(Notice, int(ref)) if is_id else None
    if notice is None:
        notice = notices.get_by_code(ref)
    if notice is None:
        raise NotFound(_("No notice with id or code %(ref)s.", ref=ref))
    if not notices.can(user, "view", notice):
        raise PermissionDenied(_("You may not see this notice: it is outside your regions."))
    return notice


def _full(notice: Notice, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return ok(serializers.notice(notice, notices.history(notice)), status, headers)  # type: ignore[arg-type]


# --- reading -----------------------------------------------------------------------------------


@bp.get("/notices")
def list_notices() -> Response:
    """Notices visible to the token's user, newest change first."""
    user = api_user()
    errors: dict[str, str] = {}
    status = request.args.get("status")
    if status is not None and status not in STATUS_FILTERS:
        errors["status"] = _("One of: %(values)s.", values=", ".join(STATUS_FILTERS))
    category = request.args.get("category") or None
    if category is not None and category not in {c.key for c in categories.all_()}:
        errors["category"] = _("No category %(key)s.", key=category)
    region: Region | None = None
    if code := request.args.get("region"):
        try:
            region = regions.get(code)
        except NotFound as exc:
            errors["region"] = exc.message
    q = request.args.get("q") or None
    if q is not None and len(q) > Q_MAX:
        errors["q"] = _("At most %(max)s characters.", max=Q_MAX)
    if errors:
        raise BadRequest(_("Some query parameters are wrong."), errors)
    page = query_int("page", 1)
    per_page = query_int("per_page", PER_PAGE_DEFAULT, high=PER_PAGE_MAX)
    rows, total = notices.list_notices(
        user, status=status, category=category, region=region, q=q, page=page, per_page=per_page
    )
    return ok(page_of([serializers.notice_summary(n) for n in rows], page, per_page, total))


@bp.get("/notices/<ref>")
def get_notice(ref: str) -> Response:
    """The whole notice, by id or code."""
    return _full(find(ref, api_user()))


# --- writing -----------------------------------------------------------------------------------


def _region_ids(codes: list[str], errors: dict[str, str]) -> list[int]:
    """Region codes → ids. Codes are looked up as codes only (a numeric code is never taken
    for an id, unlike in the admin's form)."""
    found: list[int] = []
    missing: list[str] = []
    for code in codes:
        region = db.session.scalar(select(Region).where(Region.code == code))
        if region is None:
            missing.append(code)
        else:
            found.append(region.id)
    if missing:
        errors["targets"] = _("Unknown region: %(codes)s.", codes=", ".join(missing))
    return found


def _notice_input(
    data: dict[str, Any], base: NoticeInput | None = None
) -> tuple[NoticeInput, Fields]:
    """A full NoticeInput: `base` (the current revision, for PATCH) overlaid with `data`."""
    out = base or NoticeInput()
    f = Fields(data)
    if "title" in f or base is None:
        out.title = f.string("title")
    if "body" in f or base is None:
        out.body = f.string("body")
    if "category" in f or base is None:
        out.category = f.key("category")
    if "targets" in f or base is None:
        out.targets = _region_ids(f.strings("targets"), f.errors)
    if "publish_at" in f:
        out.publish_at = f.time("publish_at")
    if "expire_at" in f:
        out.expire_at = f.time("expire_at")
    if "duration_s" in f:
        out.duration_s = f.integer("duration_s", out.duration_s)
    if "pinned" in f:
        out.pinned = f.boolean("pinned", out.pinned)
    if "hold" in f:
        out.hold = f.boolean("hold", out.hold)
    if "budget_s" in f:
        out.budget_s = f.optional_integer("budget_s")
    if "image_ids" in f:
        out.image_ids = f.integers("image_ids")
    return out, f


def _check(user: User, data: NoticeInput, f: Fields) -> None:
    """Raise every problem at once: the request's type errors and, for the other fields, what
    the service's validation says."""
    if not f.errors:
        return
    try:
        notices.validate(user, data)
    except ValidationError as exc:
        raise ValidationError({**exc.errors, **f.errors}) from None
    f.check()


def _input_from(notice: Notice) -> NoticeInput:
    rev = notice.current
    return NoticeInput(
        title=rev.title,
        body=rev.body,
        category=rev.category_id,
        targets=[r.id for r in rev.targets],
        publish_at=rev.publish_at,
        expire_at=rev.expire_at,
        duration_s=rev.duration_s,
        pinned=rev.pinned,
        hold=rev.hold,
        budget_s=rev.budget_s,
        image_ids=[i.id for i in rev.images],
    )


@bp.post("/notices")
def create_notice() -> Response:
    """A new notice, saved as a draft (revision 1)."""
    user = api_user()
    data, f = _notice_input(json_body(NOTICE_FIELDS))
    _check(user, data, f)
    notice = notices.create(user, data)
    location = url_for("api.get_notice", ref=str(notice.id))
    return _full(notice, 201, {"Location": location})


@bp.patch("/notices/<ref>")
def update_notice(ref: str) -> Response:
    """Change some fields; the others keep the current revision's values. A submitted or
    approved revision goes back to draft; a published notice gets a new draft revision."""
    user = api_user()
    notice = find(ref, user)
    data, f = _notice_input(json_body(NOTICE_FIELDS), _input_from(notice))
    _check(user, data, f)
    notices.update(user, notice, data)
    return _full(notice)


# --- the workflow ------------------------------------------------------------------------------


@bp.post("/notices/<ref>/submit")
def submit_notice(ref: str) -> Response:
    """Send the draft to review."""
    user = api_user()
    notice = find(ref, user)
    json_body((), required=False)
    notices.submit(user, notice)
    return _full(notice)


@bp.post("/notices/<ref>/approve")
def approve_notice(ref: str) -> Response:
    """Approve the submitted revision; `{"revision": n}` makes sure it is the one you read."""
    user = api_user()
    notice = find(ref, user)
    f = Fields(json_body(("revision",), required=False))
    number = f.optional_integer("revision")
    f.check()
    notices.approve(user, notice, number)
    return _full(notice)


def _reason() -> str:
    f = Fields(json_body(("reason",), required=False))
    reason = f.string("reason")
    f.check()
    return reason


@bp.post("/notices/<ref>/reject")
def reject_notice(ref: str) -> Response:
    """Send the revision back to draft with a reason."""
    user = api_user()
    notice = find(ref, user)
    notices.reject(user, notice, _reason())
    return _full(notice)


@bp.post("/notices/<ref>/publish")
def publish_notice(ref: str) -> Response:
    """Release the approved revision: live now, or scheduled for its publish time."""
    user = api_user()
    notice = find(ref, user)
    json_body((), required=False)
    notices.publish(user, notice)
    return _full(notice)


@bp.post("/notices/<ref>/withdraw")
def withdraw_notice(ref: str) -> Response:
    """Take a published or scheduled notice off the screens, with a reason."""
    user = api_user()
    notice = find(ref, user)
    notices.withdraw(user, notice, _reason())
    return _full(notice)
