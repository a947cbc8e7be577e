"""A screen's page for residents (/s/<code>): what that screen shows now, each notice linking
to its own page with ?s=<screen code> so scans are counted per screen; and the screen's own QR
code, which the player's standby slide shows.

Works without JavaScript on a cheap phone, like /n/<code>.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.models import Screen
from server.public import bp
from server.public.views import QR_SCALE_DEFAULT, QR_SCALE_MAX, category_name, category_style
from server.services import qr, screen_views
from server.services import screens as screen_service
from server.services.feedback import SCREEN_CODE_RE


def screen_url(code: str) -> str:
    """The public address of a screen's page, e.g. ``http://host/s/Ab3xK9``."""
    return qr.screen_url(current_app.config["PUBLIC_BASE_URL"], code)


def _screen_or_none(code: str) -> Screen | None:
    return screen_service.get_by_code(code) if SCREEN_CODE_RE.match(code or "") else None


@bp.get("/s/<code>")
def screen_page(code: str) -> tuple[str, int, dict[str, str]]:
    screen = _screen_or_none(code)
    if screen is None:
        message = _(
            "No screen has the code “%(code)s”. Please check the code under the QR code on the "
            "screen, or type a notice's code below.",
            code=code[:12],
        )
        page = render_template("error.html", code=404, message=message, code_form=True)
        return page, 404, {}
    shown = screen_views.shown_now(screen)
    rows: list[dict[str, Any]] = []
    for notice in shown:
        rev = notice.live_revision
        rows.append(
            {
                "notice": notice,
                "rev": rev,
                "style": category_style(rev.category),
                "url": qr.notice_url("", notice.code, screen.code),
            }
        )
    html = render_template(
        "public/screen.html",
        screen=screen,
        rows=rows,
        category_name=category_name,
    )
    return html, 200, {"Cache-Control": "public, max-age=30"}


def _qr_screen(code: str) -> Screen:
    screen = _screen_or_none(code)
    if screen is None:
        abort(404)
    return screen


@bp.get("/s/<code>/qr.png")
def screen_qr_png(code: str) -> Response:
    screen = _qr_screen(code)
    try:
        scale = int(request.args.get("scale", QR_SCALE_DEFAULT))
    except ValueError:
        scale = QR_SCALE_DEFAULT
    scale = min(max(scale, 1), QR_SCALE_MAX)
    body = qr.qr_png(screen_url(screen.code), scale, label=f"{_('Code')} {screen.code}")
    response = current_app.response_class(body, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Cookie"  # the label's language
    return response


@bp.get("/s/<code>/qr.svg")
def screen_qr_svg(code: str) -> Response:
    screen = _qr_screen(code)
    body = qr.qr_svg(screen_url(screen.code), title=screen.code,
                     label=f"{_('Code')} {screen.code}")
    response = current_app.response_class(body, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Cookie"
    return response
