"""The notice workflow: draft → submitted → approved → (scheduled →) published → expired or
withdrawn; a rejection sends a revision back to draft with a reason.

Editing a published notice makes a new revision that goes through review again while the live
revision stays on screens; publishing it replaces the live one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, false, or_, select, true
from sqlalchemy import update as sql_update
from sqlalchemy.orm import aliased, selectinload

from player import protocol
from server import signals
from server.extensions import db
from server.labels import STATUS_LABELS, VERB_LABELS, label
from server.models import (
    Category,
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
from server.models.notices import RevisionImage, revision_targets
from server.services import audit, permissions, revisions
from server.services import images as image_service
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from server.services.markup import clean_text

TITLE_MAX = 200
BODY_MAX = 20_000
DURATION_MIN, DURATION_MAX = 5, 600
# How long one notice may hold a screen in one rotation (a long notice shows that many seconds
# of its pages, then says how to read the rest and the rotation moves on; player/schedule.py).
BUDGET_DEFAULT, BUDGET_MIN, BUDGET_MAX = (
    protocol.DEFAULT_BUDGET_S, protocol.MIN_BUDGET_S, protocol.MAX_BUDGET_S)
REASON_MAX = 500
# Codes are read off screens and typed by people: one case, and no 0/1/l (o and i stand for
# them when typed: CODE_CONFUSABLES). Codes made before are mixed-case; every lookup ignores
# case (get_by_code).
CODE_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyz"
CODE_CONFUSABLES = str.maketrans({"0": "o", "1": "i", "l": "i"})
CODE_LENGTH = 6
FEW = 2000  # a filtered notice list this short is sorted from its (id, time) pairs


@dataclass
class NoticeInput:
    """What an editor (form) or a county CMS (API) sends to create or change a notice."""

    title: str = ""
    body: str = ""
    category: str | int | None = None  # key or id
    targets: Sequence[str | int] = field(default_factory=list)  # region ids (int) or codes (str)
    publish_at: datetime | None = None  # naive UTC; None: as soon as it is published
    expire_at: datetime | None = None  # naive UTC; None: never
    duration_s: int = 20
    pinned: bool = False
    hold: bool = False  # approval does not release it: its editor publishes it by hand
    budget_s: int | None = None  # seconds per rotation; None: the category's
    image_ids: Sequence[int] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------------


def get_by_id(notice_id: int) -> Notice:
    notice = db.session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(_("No notice with id %(id)s.", id=notice_id))
    return notice


def code_spellings(code: str) -> set[str]:
    """What a typed code may stand for, in lower case: as typed, and with the characters the
    alphabet leaves out read as the ones it has (0 → o; 1 and l → i)."""
    folded = code.strip().lower()
    return {folded, folded.translate(CODE_CONFUSABLES)}


def get_by_code(code: str) -> Notice | None:
    """The notice with this code as typed: exactly, else whatever the case and confusable
    characters (None when that matches none, or several of the older mixed-case codes)."""
    exact = db.session.scalar(select(Notice).where(Notice.code == code))
    if exact is not None:
        return exact
    spellings = code_spellings(code)
    found = db.session.scalars(
        select(Notice).where(db.func.lower(Notice.code).in_(spellings)).limit(4)).all()
    if len(found) > 1:  # older codes that differ only in case: the one typed as it is, if any
        found = [n for n in found if n.code.lower() == code.strip().lower()]
    return found[0] if len(found) == 1 else None


def _region_ids(roots: Sequence[Region], *, ancestors: bool) -> set[int] | None:
    """Ids of the regions in the subtrees of `roots` (and, when asked, the regions above
    them); None when that is every region there is (a county-wide user), so that callers can
    leave the condition out instead of testing 100,000 notices against it."""
    if not roots:
        return set()
    ids = set(db.session.scalars(
        select(Region.id).where(or_(*[Region.path.startswith(r.path) for r in roots]))
    ))
    if ancestors:
        for root in roots:
            ids.update(int(x) for x in root.path.strip("/").split("/") if x)
    total = db.session.scalar(select(db.func.count(Region.id))) or 0
    return None if len(ids) >= total else ids


def _targeting(region_ids: set[int]) -> Select[tuple[int]]:
    """Ids of the revisions with a target among `region_ids`."""
    return select(revision_targets.c.revision_id).where(
        revision_targets.c.region_id.in_(region_ids))


def _aimed_at(revision_id: ColumnElement[int | None], region_ids: set[int] | None
              ) -> ColumnElement[bool]:
    """The revision has a target among `region_ids` (None: any target)."""
    hit = select(revision_targets.c.revision_id).where(
        revision_targets.c.revision_id == revision_id)
    if region_ids is not None:
        hit = hit.where(revision_targets.c.region_id.in_(region_ids))
    return hit.exists()


def _all_inside(revision_id: ColumnElement[int | None], region_ids: set[int] | None
                ) -> ColumnElement[bool]:
    """Every target of the revision is among `region_ids` (None: every region), and it has
    one: `permissions.covers` for a revision, in SQL."""
    if region_ids is None:
        return _aimed_at(revision_id, None)
    outside = select(revision_targets.c.revision_id).where(
        revision_targets.c.revision_id == revision_id,
        revision_targets.c.region_id.not_in(region_ids) if region_ids else true(),
    )
    return and_(_aimed_at(revision_id, None), ~outside.exists())


def visible_query(user: User) -> Select[tuple[Notice]]:
    """Notices `user` may see in the admin: any target inside one of their subtrees, or a
    target above their region (county-wide notices are visible to town editors).

    The region ids are worked out first (a county has hundreds of regions, not 100,000), so
    the check per notice is an index probe; a user who sees every region gets no condition
    at all (every notice has a target)."""
    roots = [g.region for g in user.grants]
    if not roots or not user.is_active:
        return select(Notice).where(false())
    region_ids = _region_ids(roots, ancestors=True)
    if region_ids is None:
        return select(Notice)
    # IN (subquery), not EXISTS: PostgreSQL hashes the matching revisions once and estimates
    # the cost as what it is (a correlated EXISTS over 100,000 notices is costed so high that
    # the JIT compiler kicks in, which alone takes longer than the query).
    matching = _targeting(region_ids)
    return select(Notice).where(
        or_(
            Notice.pending_revision_id.in_(matching),
            Notice.live_revision_id.in_(matching),
            Notice.created_by_id == user.id,
        )
    )


def _with_revisions(stmt: Select[tuple[Notice]]) -> Select[tuple[Notice]]:
    """Load each notice's live and pending revision (with their category, targets and
    pictures) in a few statements for the whole page, not a few per notice."""
    return stmt.options(selectinload(Notice.pending_revision), selectinload(Notice.live_revision))


# What waits for someone, as list filters beside the statuses (server/labels.py names them):
# a revision in review, one approved that an editor is to publish, one whose publish time has
# passed while it waits (held by its editor, or approved after it expired), one sent back.
WAITING = ("pending_review", "to_publish", "overdue", "returned")


def _waiting(pending: Any, status: str) -> list[ColumnElement[bool]]:
    if status == "pending_review":
        return [pending.state == RevisionState.SUBMITTED]
    if status == "returned":
        return [pending.state == RevisionState.DRAFT, pending.reject_reason != ""]
    conditions = [pending.state == RevisionState.APPROVED]
    if status == "overdue":
        conditions.append(pending.publish_at <= utcnow())
    return conditions


def _filtered(
    user: User,
    *,
    status: str | None = None,
    category: str | None = None,
    region: Region | None = None,
    q: str | None = None,
    created_by: User | None = None,
) -> Select[tuple[Notice]]:
    stmt = visible_query(user)
    current_rev = db.func.coalesce(Notice.pending_revision_id, Notice.live_revision_id)
    if status in WAITING:
        pending = aliased(Revision)
        stmt = stmt.join(pending, pending.id == Notice.pending_revision_id).where(
            *_waiting(pending, status)
        )
    elif status:
        stmt = stmt.where(Notice.status == status)
    if created_by is not None:
        stmt = stmt.where(Notice.created_by_id == created_by.id)
    # Category and search look at the current revision: the matching revisions are found
    # first (an index-only scan of revisions' (category_id, id) or (title, id)), then the
    # notices whose current revision is one of them.
    if category:
        stmt = stmt.where(current_rev.in_(select(Revision.id).where(
            Revision.category_id.in_(select(Category.id).where(Category.key == category)))))
    if q:
        q = q.strip()
        like = f"%{q}%"
        # Chinese has no case: a plain LIKE matches the same titles, several times faster.
        title = Revision.title.like(like) if q.lower() == q.upper() else Revision.title.ilike(like)
        stmt = stmt.where(or_(current_rev.in_(select(Revision.id).where(title)),
                              Notice.code == q))
    if region is not None:
        region_ids = _region_ids([region], ancestors=False)
        if region_ids is not None:  # None: the whole tree, where every notice is aimed
            stmt = stmt.where(current_rev.in_(_targeting(region_ids)))
    return stmt


def count_notices(user: User, **filters: Any) -> int:
    """How many notices `list_notices` would list with these filters (one COUNT)."""
    stmt = _filtered(user, **filters).with_only_columns(db.func.count(Notice.id))
    return db.session.scalar(stmt) or 0


def list_notices(
    user: User,
    *,
    status: str | None = None,
    category: str | None = None,
    region: Region | None = None,
    q: str | None = None,
    page: int = 1,
    per_page: int = 30,
) -> tuple[list[Notice], int]:
    """A page of notices visible to `user`, newest change first, and the total count."""
    stmt = _filtered(user, status=status, category=category, region=region, q=q)
    total = db.session.scalar(stmt.with_only_columns(db.func.count(Notice.id))) or 0
    offset = (max(page, 1) - 1) * per_page
    if offset >= total:
        return [], total
    if total <= FEW:
        # Few matches among many notices: walking the newest-first index until a page is
        # full would read most of the table. Take the few (id, time) pairs, sort them here.
        pairs = db.session.execute(stmt.with_only_columns(Notice.id, Notice.updated_at)).all()
        pairs.sort(key=lambda p: (p[1], p[0]), reverse=True)
        ids = [notice_id for notice_id, _at in pairs[offset:offset + per_page]]
        found = {n.id: n for n in db.session.scalars(
            _with_revisions(select(Notice).where(Notice.id.in_(ids))))}
        return [found[i] for i in ids if i in found], total
    # The page's ids first (an index-only scan of (updated_at, id) or (status, updated_at,
    # id), cheap even at page 3,000), then those notices and their revisions.
    ids = list(db.session.scalars(
        stmt.with_only_columns(Notice.id)
        .order_by(Notice.updated_at.desc(), Notice.id.desc())
        .limit(per_page)
        .offset(offset)
    ))
    found = {n.id: n for n in db.session.scalars(
        _with_revisions(select(Notice).where(Notice.id.in_(ids))))}
    return [found[i] for i in ids if i in found], total


def _reviewable(user: User) -> Select[tuple[Notice]]:
    """Submitted revisions that `user` may approve (`can(user, "approve", …)`, in SQL): every
    target inside a subtree where the user reviews, and not their own submission."""
    roots = permissions.grant_roots(user, Role.REVIEWER)
    region_ids = _region_ids(roots, ancestors=False) if roots else set()
    return (
        visible_query(user)
        .join(Revision, Revision.id == Notice.pending_revision_id)
        .where(
            Revision.state == RevisionState.SUBMITTED,
            or_(Revision.submitted_by_id.is_(None), Revision.submitted_by_id != user.id),
            _all_inside(Notice.pending_revision_id, region_ids) if roots else false(),
        )
    )


def review_queue(user: User, limit: int | None = None, offset: int = 0) -> list[Notice]:
    """Submitted revisions that `user` may approve (not their own submissions), oldest
    submission first; `limit` of them from `offset` (all when None)."""
    stmt = _with_revisions(_reviewable(user)).options(
        selectinload(Notice.pending_revision).selectinload(Revision.submitted_by)
    ).order_by(Revision.submitted_at, Notice.id)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return list(db.session.scalars(stmt))


def review_count(user: User) -> int:
    """How many notices wait for `user`'s review (one COUNT)."""
    stmt = _reviewable(user).with_only_columns(db.func.count(Notice.id))
    return db.session.scalar(stmt) or 0


def answerable(user: User) -> ColumnElement[bool]:
    """Notices whose questions `user` may answer (`can(user, "answer", …)`, in SQL): every
    target of the current revision inside a subtree where the user edits."""
    roots = permissions.grant_roots(user, Role.EDITOR)
    if not roots or not user.is_active:
        return false()
    current_rev = db.func.coalesce(Notice.pending_revision_id, Notice.live_revision_id)
    return _all_inside(current_rev, _region_ids(roots, ancestors=False))


def can(user: User, action: str, notice: Notice) -> bool:
    """Whether `user` may do `action` to `notice` now, by role and region (not by state)."""
    rev = notice.current
    if action in ("edit", "submit", "answer"):
        return permissions.covers(user, Role.EDITOR, rev.targets)
    if action in ("approve", "reject"):
        return permissions.covers(user, Role.REVIEWER, rev.targets) and (
            rev.submitted_by_id != user.id
        )
    if action in ("publish", "withdraw"):
        targets = rev.targets if action == "publish" else (notice.live_revision or rev).targets
        return permissions.covers(user, Role.EDITOR, targets) or permissions.covers(
            user, Role.REVIEWER, targets
        )
    if action == "view":
        return permissions.sees(user, rev.targets) or notice.created_by_id == user.id
    raise ValueError(action)


# --- validation ----------------------------------------------------------------------------


def _resolve_category(value: str | int | None) -> Category | None:
    if value in (None, ""):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        cat = db.session.get(Category, int(value))
    else:
        cat = db.session.scalar(select(Category).where(Category.key == value))
    return cat if cat is not None and cat.active else None


def _resolve_regions(values: Sequence[str | int]) -> tuple[list[Region], list[str]]:
    found: list[Region] = []
    missing: list[str] = []
    for value in values:
        # An int is a region id (forms), a string is a region code (the API, the CLI, people).
        if isinstance(value, int):
            region = db.session.get(Region, value)
        else:
            region = db.session.scalar(select(Region).where(Region.code == str(value).strip()))
        if region is None:
            missing.append(str(value))
        elif region not in found:
            found.append(region)
    return found, missing


def validate(actor: User, data: NoticeInput) -> tuple[Category, list[Region], list[Image]]:
    """Check everything at once and raise one ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    title = clean_text(data.title or "").strip()
    body = clean_text(data.body or "").strip()
    if not title:
        errors["title"] = _("A title is required.")
    elif len(title) > TITLE_MAX:
        errors["title"] = _(
            "The title is %(n)s characters; at most %(max)s.", n=len(title), max=TITLE_MAX
        )
    elif "\n" in title:
        errors["title"] = _("The title must be one line.")
    if not body:
        errors["body"] = _("The body is required.")
    elif len(body) > BODY_MAX:
        errors["body"] = _(
            "The body is %(n)s characters; at most %(max)s.", n=len(body), max=BODY_MAX
        )
    category = _resolve_category(data.category)
    if category is None:
        errors["category"] = _("Choose a category.")
    regions, missing = _resolve_regions(list(data.targets or []))
    if missing:
        errors["targets"] = _("Unknown region: %(codes)s.", codes=", ".join(missing))
    elif not regions:
        errors["targets"] = _("Choose at least one region to publish to.")
    elif not permissions.covers(actor, Role.EDITOR, regions):
        outside = [r.name for r in regions if not permissions.covers(actor, Role.EDITOR, [r])]
        errors["targets"] = _(
            "Outside the regions you may publish to: %(names)s.", names="、".join(outside)
        )
    if data.publish_at and data.expire_at and data.expire_at <= data.publish_at:
        errors["expire_at"] = _("The expiry must be after the publication time.")
    elif data.expire_at and not data.publish_at and data.expire_at <= utcnow():
        errors["expire_at"] = _("The expiry must be in the future.")
    try:
        duration = int(data.duration_s)
    except (TypeError, ValueError):
        duration = -1
    if not DURATION_MIN <= duration <= DURATION_MAX:
        errors["duration_s"] = _(
            "Display time must be %(min)s to %(max)s seconds.", min=DURATION_MIN, max=DURATION_MAX
        )
    budget = _budget(data.budget_s)
    if budget == -1:
        errors["budget_s"] = _(
            "Time per rotation must be %(min)s to %(max)s seconds.", min=BUDGET_MIN,
            max=BUDGET_MAX,
        )
    images: list[Image] = []
    max_images = current_app.config["MAX_IMAGES_PER_NOTICE"]
    for image_id in list(data.image_ids or []):
        image = db.session.get(Image, int(image_id))
        if image is None or not image_service.may_use(actor, image):
            # (not "outside your regions": whether another town's picture id exists is theirs)
            errors["images"] = _("Unknown image %(id)s.", id=image_id)
        elif image not in images:
            images.append(image)
    if len(images) > max_images:
        errors["images"] = _("At most %(n)s images per notice.", n=max_images)
    if errors:
        raise ValidationError(errors)
    assert category is not None
    data.title, data.body, data.duration_s, data.budget_s = title, body, duration, budget
    return category, regions, images


def _budget(value: Any) -> int | None:
    """A time budget as given (None: inherited), or -1 when it is not one."""
    if value is None or value == "":
        return None
    try:
        budget = int(value)
    except (TypeError, ValueError):
        return -1
    return budget if BUDGET_MIN <= budget <= BUDGET_MAX else -1


def budget_of(rev: Revision) -> int:
    """Seconds `rev` may hold a screen in one rotation: its own, its category's, the default."""
    return rev.budget_s or rev.category.budget_s or BUDGET_DEFAULT


def _apply(
    rev: Revision, data: NoticeInput, category: Category, regions: list[Region], images: list[Image]
) -> None:
    rev.title = data.title
    rev.body = data.body
    rev.category = category
    rev.targets = regions
    rev.publish_at = data.publish_at
    rev.expire_at = data.expire_at
    rev.duration_s = data.duration_s
    rev.pinned = bool(data.pinned)
    rev.hold = bool(data.hold)
    rev.budget_s = data.budget_s
    rev.image_links = [RevisionImage(image=img, position=i) for i, img in enumerate(images)]


def _new_code() -> str:
    for _attempt in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if get_by_code(code) is None:
            return code
    raise RuntimeError("could not find a free notice code")


# --- writing -------------------------------------------------------------------------------


def create(actor: User, data: NoticeInput) -> Notice:
    """A new notice as a draft (revision 1)."""
    category, regions, images = validate(actor, data)
    notice = Notice(code=_new_code(), status=NoticeStatus.DRAFT, created_by=actor)
    rev = Revision(notice=notice, number=1, state=RevisionState.DRAFT, created_by=actor)
    _apply(rev, data, category, regions, images)
    db.session.add_all([notice, rev])
    db.session.flush()
    notice.pending_revision = rev
    audit.record(
        actor,
        "notice",
        notice.id,
        "create",
        to_state=NoticeStatus.DRAFT,
        detail={"revision": 1, "title": rev.title},
    )
    db.session.commit()
    return notice


def update(actor: User, notice: Notice, data: NoticeInput) -> Revision:
    """Change a notice's content.

    A draft is changed in place. A submitted or approved revision goes back to draft (it must
    be reviewed again). A live notice gets a new draft revision; the live one stays on screens.
    """
    if not can(actor, "edit", notice):
        raise PermissionDenied(_("You may not edit this notice: it is outside your regions."))
    category, regions, images = validate(actor, data)
    rev = notice.pending_revision
    if rev is None:
        base = notice.live_revision
        assert base is not None
        rev = Revision(
            notice=notice,
            number=len(notice.revisions) + 1,
            state=RevisionState.DRAFT,
            created_by=actor,
        )
        _apply(rev, data, category, regions, images)
        db.session.add(rev)
        db.session.flush()
        notice.pending_revision = rev
        audit.record(
            actor,
            "notice",
            notice.id,
            "revise",
            from_state=notice.status,
            to_state=notice.status,
            detail={"revision": rev.number, "from": base.number},
        )
    elif rev.state != RevisionState.DRAFT:
        old = rev.state
        rev.state = RevisionState.DRAFT
        if notice.live_revision is None:
            notice.status = NoticeStatus.DRAFT
        audit.record(
            actor,
            "notice",
            notice.id,
            "reopen",
            from_state=old,
            to_state="draft",
            reason=_("Edited after submission; it must be reviewed again."),
            detail={"revision": rev.number},
        )
    _apply(rev, data, category, regions, images)
    audit.record(
        actor,
        "notice",
        notice.id,
        "edit",
        from_state=rev.state,
        to_state=rev.state,
        detail={"revision": rev.number, "title": rev.title},
    )
    notice.updated_at = utcnow()
    db.session.commit()
    return rev


def _pending(notice: Notice, state: RevisionState, action: str) -> Revision:
    rev = notice.pending_revision
    if rev is None or rev.state != state:
        have = rev.state if rev is not None else notice.status
        raise Conflict(
            _(
                "Cannot %(action)s: the notice is %(state)s.",
                action=label(VERB_LABELS, action),
                state=label(STATUS_LABELS, have),
            )
        )
    return rev


def submit(actor: User, notice: Notice) -> Revision:
    """Send the pending draft to review."""
    if not can(actor, "submit", notice):
        raise PermissionDenied(_("You may not submit this notice: it is outside your regions."))
    rev = _pending(notice, RevisionState.DRAFT, "submit")
    rev.submitted_by = actor
    rev.submitted_at = utcnow()
    rev.reject_reason = ""
    return _advance(actor, notice, rev, RevisionState.SUBMITTED, NoticeStatus.SUBMITTED, "submit")


def _advance(actor: User, notice: Notice, rev: Revision, state: RevisionState,
             status: NoticeStatus, action: str, *, commit: bool = True) -> Revision:
    """Move the pending revision to `state`; a notice that was never live follows it to
    `status` (a live notice stays published while its next revision is reviewed). Audited."""
    rev.state = state
    old = notice.status
    if notice.live_revision is None:
        notice.status = status
    audit.record(actor, "notice", notice.id, action, from_state=old, to_state=notice.status,
                 detail={"revision": rev.number})
    notice.updated_at = utcnow()
    if commit:
        db.session.commit()
    return rev


def releases_on_approval(rev: Revision) -> bool:
    """Approval releases a revision with a publish time (scheduled for it, or live at once when
    it has passed) unless its editor chose to hold it; without a time an editor publishes it."""
    return rev.publish_at is not None and not rev.hold


def approve(actor: User, notice: Notice, revision_number: int | None = None) -> Revision:
    """The reviewer's sign-off. Approving the same revision twice is a conflict."""
    rev = notice.pending_revision
    if revision_number is not None and (rev is None or rev.number != revision_number):
        raise Conflict(_("Revision %(n)s is not waiting for review.", n=revision_number))
    if not can(actor, "approve", notice):
        if notice.current.submitted_by_id == actor.id:
            raise PermissionDenied(_("You cannot approve a notice you submitted yourself."))
        raise PermissionDenied(_("You may not review this notice: it is outside your regions."))
    rev = _pending(notice, RevisionState.SUBMITTED, "approve")
    now = utcnow()
    rev.reviewed_by = actor
    rev.reviewed_at = now
    release = releases_on_approval(rev) and not (
        rev.expire_at is not None and rev.expire_at <= now
    )  # (expired while in review: it waits, approved, for its editor to change the dates)
    _advance(actor, notice, rev, RevisionState.APPROVED, NoticeStatus.APPROVED, "approve",
             commit=not release)
    if release:
        _release(actor, notice, rev, now)
    return rev


def reject(actor: User, notice: Notice, reason: str) -> Revision:
    """Send a submitted (or approved, not yet published) revision back to draft, with a reason."""
    reason = clean_text(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the notice is rejected.")})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": _("At most %(max)s characters.", max=REASON_MAX)})
    if not can(actor, "reject", notice):
        raise PermissionDenied(_("You may not review this notice: it is outside your regions."))
    rev = notice.pending_revision
    if rev is None or rev.state not in (RevisionState.SUBMITTED, RevisionState.APPROVED):
        raise Conflict(
            _(
                "Cannot %(action)s: the notice is %(state)s.",
                action=label(VERB_LABELS, "reject"),
                state=label(STATUS_LABELS, rev.state if rev else notice.status),
            )
        )
    old_rev = rev.state
    rev.state = RevisionState.DRAFT
    rev.reject_reason = reason
    rev.reviewed_by = actor
    rev.reviewed_at = utcnow()
    old = notice.status
    if notice.live_revision is None:
        notice.status = NoticeStatus.DRAFT
    audit.record(
        actor,
        "notice",
        notice.id,
        "reject",
        from_state=old_rev,
        to_state="draft",
        reason=reason,
        detail={"revision": rev.number, "notice_from": str(old)},
    )
    notice.updated_at = utcnow()
    db.session.commit()
    return rev


def publish(actor: User, notice: Notice, now: datetime | None = None) -> Notice:
    """Release an approved revision: live at once, or scheduled for its publish time."""
    now = now or utcnow()
    if not can(actor, "publish", notice):
        raise PermissionDenied(_("You may not publish this notice: it is outside your regions."))
    rev = _pending(notice, RevisionState.APPROVED, "publish")
    if rev.expire_at is not None and rev.expire_at <= now:
        raise ValidationError({"expire_at": _("The expiry has already passed; edit the notice.")})
    _release(actor, notice, rev, now)
    return notice


def _release(actor: User, notice: Notice, rev: Revision, now: datetime) -> None:
    """Schedule the approved `rev` for its publish time, or put it live now. Commits."""
    old = notice.status
    if rev.publish_at is not None and rev.publish_at > now:
        rev.state = RevisionState.SCHEDULED
        if notice.live_revision is None or notice.status != NoticeStatus.PUBLISHED:
            notice.status = NoticeStatus.SCHEDULED
        audit.record(
            actor,
            "notice",
            notice.id,
            "schedule",
            from_state=old,
            to_state=notice.status,
            detail={"revision": rev.number, "publish_at": rev.publish_at.isoformat()},
        )
        notice.updated_at = utcnow()
        db.session.commit()
        return
    region_ids = _go_live(actor, notice, rev, now)
    revision = revisions.bump(region_ids)
    db.session.commit()
    signals.notice_changed.send(
        current_app._get_current_object(),
        notice_ids=[notice.id],
        reason="publish",
        region_ids=region_ids,
        revision=revision,
        changes=[_change(notice.id, region_ids, revision)],
    )


class ScreenChange(TypedDict):
    """One notice's part of a `notice_changed` signal: the regions whose screens it touched
    (old and new targets) and the revision that change got."""

    notice_id: int
    region_ids: list[int]
    revision: int


def _change(notice_id: int, region_ids: list[int], revision: int) -> ScreenChange:
    return {"notice_id": notice_id, "region_ids": region_ids, "revision": revision}


def _screen_regions(notice: Notice) -> list[int]:
    """The targets of what screens show of `notice` now (none unless it is live)."""
    live = notice.live_revision
    if live is None or notice.status != NoticeStatus.PUBLISHED:
        return []
    return [r.id for r in live.targets]


def _go_live(actor: User | None, notice: Notice, rev: Revision, now: datetime) -> list[int]:
    """Make `rev` the live revision. Returns the ids of the regions whose screens change:
    the targets of the revision it replaces (if that was on screens) and the new targets."""
    old = notice.status
    previous = notice.live_revision
    affected = set(_screen_regions(notice)) | {r.id for r in rev.targets}
    if previous is not None and previous is not rev:
        previous.state = RevisionState.SUPERSEDED
    rev.state = RevisionState.LIVE
    notice.live_revision = rev
    notice.pending_revision = None
    notice.status = NoticeStatus.PUBLISHED
    notice.published_at = now
    notice.first_published_at = notice.first_published_at or now
    notice.ended_at = None
    notice.withdraw_reason = ""
    notice.updated_at = now
    audit.record(
        actor,
        "notice",
        notice.id,
        "publish",
        from_state=old,
        to_state=NoticeStatus.PUBLISHED,
        detail={
            "revision": rev.number,
            "replaces": previous.number if previous is not None else None,
        },
    )
    return sorted(affected)


def withdraw(actor: User, notice: Notice, reason: str) -> Notice:
    """Take a published (or scheduled) notice off the screens; the page says it was withdrawn."""
    reason = clean_text(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why the notice is withdrawn.")})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": _("At most %(max)s characters.", max=REASON_MAX)})
    if not can(actor, "withdraw", notice):
        raise PermissionDenied(_("You may not withdraw this notice: it is outside your regions."))
    if notice.status not in (NoticeStatus.PUBLISHED, NoticeStatus.SCHEDULED):
        raise Conflict(
            _(
                "Cannot %(action)s: the notice is %(state)s.",
                action=label(VERB_LABELS, "withdraw"),
                state=label(STATUS_LABELS, notice.status),
            )
        )
    old = notice.status
    pending = notice.pending_revision
    if pending is not None and pending.state == RevisionState.SCHEDULED:
        pending.state = RevisionState.APPROVED  # unscheduled; may be published again
    was_live = notice.status == NoticeStatus.PUBLISHED
    region_ids = _screen_regions(notice)
    notice.status = NoticeStatus.WITHDRAWN if notice.live_revision else NoticeStatus.APPROVED
    notice.ended_at = utcnow()
    notice.withdraw_reason = reason
    notice.updated_at = utcnow()
    audit.record(
        actor,
        "notice",
        notice.id,
        "withdraw",
        from_state=old,
        to_state=notice.status,
        reason=reason,
    )
    revision = revisions.bump(region_ids) if was_live else 0
    db.session.commit()
    if was_live:
        signals.notice_changed.send(
            current_app._get_current_object(),
            notice_ids=[notice.id],
            reason="withdraw",
            region_ids=region_ids,
            revision=revision,
            changes=[_change(notice.id, region_ids, revision)],
        )
    return notice


def run_schedule(now: datetime | None = None) -> list[int]:
    """Publish what is due and expire what has run out. Safe to run from several processes at
    once: each change is a compare-and-set on the notice's status, so only one process wins it.
    Returns the ids of notices whose live content changed."""
    now = now or utcnow()
    changed: list[int] = []
    changes: list[ScreenChange] = []
    due = db.session.scalars(
        select(Revision).where(
            Revision.state == RevisionState.SCHEDULED,
            or_(Revision.publish_at.is_(None), Revision.publish_at <= now),
        )
    ).all()
    for rev in due:
        won = db.session.execute(
            sql_update(Revision)
            .where(Revision.id == rev.id, Revision.state == RevisionState.SCHEDULED)
            .values(state=RevisionState.APPROVED)
        ).rowcount
        if not won:
            continue
        db.session.refresh(rev)
        if rev.expire_at is not None and rev.expire_at <= now:
            rev.state = RevisionState.APPROVED
            rev.notice.status = (
                NoticeStatus.APPROVED if rev.notice.live_revision is None else rev.notice.status
            )
            audit.record(
                None,
                "notice",
                rev.notice_id,
                "skip",
                from_state="scheduled",
                to_state="approved",
                reason="expired before its publish time",
            )
        else:
            region_ids = _go_live(None, rev.notice, rev, now)
            changes.append(_change(rev.notice_id, region_ids, revisions.bump(region_ids)))
            changed.append(rev.notice_id)
        db.session.commit()
    expiring = db.session.scalars(
        select(Notice)
        .join(Revision, Revision.id == Notice.live_revision_id)
        .where(Notice.status == NoticeStatus.PUBLISHED, Revision.expire_at <= now)
    ).all()
    for notice in expiring:
        region_ids = _screen_regions(notice)
        won = db.session.execute(
            sql_update(Notice)
            .where(Notice.id == notice.id, Notice.status == NoticeStatus.PUBLISHED)
            .values(status=NoticeStatus.EXPIRED, ended_at=now, updated_at=now)
        ).rowcount
        if won:
            audit.record(
                None, "notice", notice.id, "expire", from_state="published", to_state="expired"
            )
            changes.append(_change(notice.id, region_ids, revisions.bump(region_ids)))
            changed.append(notice.id)
        db.session.commit()
    if changed:
        signals.notice_changed.send(
            current_app._get_current_object(),
            notice_ids=changed,
            reason="schedule",
            region_ids=sorted({rid for c in changes for rid in c["region_ids"]}),
            revision=max((c["revision"] for c in changes), default=0),
            changes=changes,
        )
    return changed


def public_state(notice: Notice, now: datetime | None = None) -> str:
    """What the residents' page says: published, expired, withdrawn, or not_published.

    An expiry that passed since the last scheduler run already counts as expired here."""
    now = now or utcnow()
    live = notice.live_revision
    if live is None:
        return "not_published"
    if notice.status == NoticeStatus.WITHDRAWN:
        return "withdrawn"
    if notice.status == NoticeStatus.EXPIRED or (
        live is not None and live.expire_at is not None and live.expire_at <= now
    ):
        return "expired"
    return "published"


def live_for_regions(region_ids: Sequence[int], now: datetime | None = None) -> list[Notice]:
    """Notices live now on screens in any of `region_ids` (a target covers its descendants)."""
    now = now or utcnow()
    regions = db.session.scalars(select(Region).where(Region.id.in_(list(region_ids)))).all()
    ancestor_ids: set[int] = set()
    for region in regions:
        ancestor_ids.update(int(x) for x in region.path.strip("/").split("/") if x)
    stmt = (
        select(Notice)
        .join(Revision, Revision.id == Notice.live_revision_id)
        .join(revision_targets, revision_targets.c.revision_id == Revision.id)
        .where(
            Notice.status == NoticeStatus.PUBLISHED,
            revision_targets.c.region_id.in_(ancestor_ids),
            or_(Revision.expire_at.is_(None), Revision.expire_at > now),
        )
        .distinct()
    )
    notices = list(db.session.scalars(stmt))
    notices.sort(key=lambda n: (not n.live_revision.pinned, -(n.published_at or now).timestamp()))
    return notices


def history(notice: Notice) -> list[object]:
    """The notice's audit events, oldest first."""
    from server.models import AuditEvent

    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity == "notice", AuditEvent.entity_id == notice.id)
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )


def default_expiry(days: int = 30) -> datetime:
    return utcnow() + timedelta(days=days)
