"""Notices: list, create, edit, review, publish, withdraw; and residents' feedback."""

from __future__ import annotations

from flask import redirect, url_for
from werkzeug.wrappers import Response

from admin import bp
from admin.guards import login_required


@bp.get("/")
@login_required
def index() -> Response:
    return redirect(url_for("admin.notice_list"))


@bp.get("/notices")
@login_required
def notice_list() -> str:
    return "notices"


# Placeholders until the admin UI work fills them in (the nav links to them).
@bp.get("/review")
@login_required
def review_queue() -> str:
    return "review"


@bp.get("/feedback")
@login_required
def feedback_inbox() -> str:
    return "feedback"
