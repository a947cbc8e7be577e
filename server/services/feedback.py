"""Residents' questions (意见反馈) and the editors' answers, archived with the notice."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from server.extensions import db
from server.models import Feedback, Notice, User
from server.models.base import utcnow
from server.services import audit, notices
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from server.services.markup import clean_text

BODY_MIN, BODY_MAX = 5, 500
ANSWER_MAX = 2000
NAME_MAX, CONTACT_MAX = 40, 40
PER_CLIENT_PER_DAY = 5
SCREEN_CODE_RE = re.compile(r"^[A-Za-z0-9]{3,16}$")
_LINKS = re.compile(r"(https?://|www\.)", re.I)


def submit(
    notice: Notice,
    *,
    body: str,
    name: str = "",
    contact: str = "",
    client_hash: str = "",
    screen_code: str | None = None,
    form_nonce: str | None = None,
) -> Feedback:
    """Store a resident's question after checking length, links and repetition. A form (its
    `form_nonce`) is sent once: the same token again is refused."""
    if notices.public_state(notice) == "not_published":
        raise Conflict(_("This notice is not published."))
    if form_nonce and db.session.scalar(
            select(Feedback.id).where(Feedback.form_nonce == form_nonce)) is not None:
        raise ValidationError({"form": _("This form was sent already. Reload the page to ask "
                                         "another question.")})
    body = clean_text(body or "").strip()
    name = clean_text(name or "").strip()
    contact = clean_text(contact or "").strip()
    errors: dict[str, str] = {}
    if len(body) < BODY_MIN:
        errors["body"] = _("Please write at least %(n)s characters.", n=BODY_MIN)
    elif len(body) > BODY_MAX:
        errors["body"] = _("At most %(n)s characters.", n=BODY_MAX)
    elif len(_LINKS.findall(body)) > 1:
        errors["body"] = _("Links are not allowed in questions.")
    if len(name) > NAME_MAX:
        errors["name"] = _("At most %(n)s characters.", n=NAME_MAX)
    if len(contact) > CONTACT_MAX:
        errors["contact"] = _("At most %(n)s characters.", n=CONTACT_MAX)
    if errors:
        raise ValidationError(errors)
    if client_hash:
        since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        recent = db.session.scalars(
            select(Feedback).where(
                Feedback.client_hash == client_hash, Feedback.created_at >= since
            )
        ).all()
        if any(f.body == body and f.notice_id == notice.id for f in recent):
            raise ValidationError({"body": _("You have already sent this question.")})
        if len(recent) >= PER_CLIENT_PER_DAY:
            raise ValidationError({"body": _("Too many questions today; please try tomorrow.")})
    if screen_code and not SCREEN_CODE_RE.match(screen_code):
        screen_code = None
    item = Feedback(
        notice=notice,
        body=body,
        name=name,
        contact=contact,
        client_hash=client_hash,
        screen_code=screen_code,
        form_nonce=form_nonce,
    )
    db.session.add(item)
    try:
        db.session.commit()
    except IntegrityError:  # the same form sent twice at once: the other one was stored
        db.session.rollback()
        raise ValidationError({"form": _("This form was sent already. Reload the page to ask "
                                         "another question.")}) from None
    return item


def get_for(actor: User, feedback_id: int) -> Feedback:
    """A question the actor may answer or moderate (NotFound otherwise, so that questions on
    other regions' notices are not even confirmed to exist)."""
    item = db.session.get(Feedback, feedback_id)
    if item is None or not notices.can(actor, "answer", item.notice):
        raise NotFound(_("No question %(id)s among those you may answer.", id=feedback_id))
    return item


def public_for(notice: Notice) -> list[Feedback]:
    """Answered questions, shown on the residents' page, newest first."""
    return list(
        db.session.scalars(
            select(Feedback)
            .where(Feedback.notice_id == notice.id, Feedback.status == "answered")
            .order_by(Feedback.answered_at.desc())
        )
    )


def counts_for(notice: Notice) -> dict[str, int]:
    rows = db.session.execute(
        select(Feedback.status, func.count())
        .where(Feedback.notice_id == notice.id)
        .group_by(Feedback.status)
    ).all()
    return {status: count for status, count in rows}


def _answerable(actor: User, status: str | None) -> Select[tuple[Feedback]]:
    stmt = select(Feedback).join(Notice, Notice.id == Feedback.notice_id).where(
        notices.answerable(actor))
    return stmt.where(Feedback.status == status) if status else stmt


def inbox(actor: User, status: str | None = "open") -> list[Feedback]:
    """Questions on notices the actor may answer, oldest unanswered first (at most 500)."""
    stmt = _answerable(actor, status).order_by(
        Feedback.created_at.desc() if status != "open" else Feedback.created_at)
    stmt = stmt.options(
        selectinload(Feedback.notice).selectinload(Notice.pending_revision),
        selectinload(Feedback.notice).selectinload(Notice.live_revision),
    )
    return list(db.session.scalars(stmt.limit(500)))


def count(actor: User, status: str | None = "open") -> int:
    """How many questions `inbox` would list (one COUNT, no limit)."""
    stmt = _answerable(actor, status).with_only_columns(func.count(Feedback.id))
    return db.session.scalar(stmt) or 0


def answer(actor: User, item: Feedback, text: str) -> Feedback:
    """Answer a question; the answer shows on the residents' page and is archived."""
    if not notices.can(actor, "answer", item.notice):
        raise PermissionDenied(_("You may not answer questions on this notice."))
    text = clean_text(text or "").strip()
    if not text:
        raise ValidationError({"answer": _("Write an answer.")})
    if len(text) > ANSWER_MAX:
        raise ValidationError({"answer": _("At most %(n)s characters.", n=ANSWER_MAX)})
    old = item.status
    item.answer, item.status = text, "answered"
    item.answered_by, item.answered_at = actor, utcnow()
    audit.record(
        actor,
        "feedback",
        item.id,
        "answer",
        from_state=old,
        to_state="answered",
        detail={"notice": item.notice_id},
    )
    db.session.commit()
    return item


def hide(actor: User, item: Feedback, reason: str) -> Feedback:
    """Hide spam or abuse (kept in the archive, with the reason)."""
    if not notices.can(actor, "answer", item.notice):
        raise PermissionDenied(_("You may not moderate questions on this notice."))
    reason = clean_text(reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Say why it is hidden.")})
    old = item.status
    item.status = "hidden"
    audit.record(
        actor,
        "feedback",
        item.id,
        "hide",
        from_state=old,
        to_state="hidden",
        reason=reason[:500],
        detail={"notice": item.notice_id},
    )
    db.session.commit()
    return item
