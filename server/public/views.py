"""Residents' pages: the landing page, a notice's page (/n/<code>) with its questions and
answers, its QR code, its public JSON for the county's app, and uploaded pictures.

Everything here works without JavaScript on a cheap phone. Views call the services; the only
rules kept here are the form's spam defences (honeypot, signed time token, rate limit), which
are about the web form rather than about questions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from flask import (
    abort,
    current_app,
    flash,
    get_flashed_messages,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import format_date, format_time
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.wrappers import Response

from server.errors import json_error
from server.extensions import limiter
from server.models import Category, Notice, Region
from server.public import bp
from server.services import feedback, images, notices, qr, scans
from server.services.errors import ServiceError, ValidationError
from server.services.feedback import SCREEN_CODE_RE
from server.services.markup import to_html

CODE_RE = re.compile(r"^[A-Za-z0-9]{1,12}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
HONEYPOT = "website"  # a field people never see; bots fill it in
FORM_MIN_SECONDS = 3  # nobody reads a notice and types a question faster than this
FORM_MAX_SECONDS = 24 * 3600
QR_SCALE_DEFAULT, QR_SCALE_MAX = 10, 40
SENT = "feedback-sent"  # the flash category of "your question was received"
MEDIA_MAX_AGE = 365 * 24 * 3600  # pictures are stored under their content hash: never change


# --- helpers ---------------------------------------------------------------------------------


def _screen_code() -> str | None:
    """The `?s=` screen code, when well formed (anything else is ignored, not stored)."""
    value = request.args.get("s") or None
    return value if value and SCREEN_CODE_RE.match(value) else None


def _scan(notice: Notice, kind: str) -> None:
    """Count this visit as a scan of `notice` (once per phone, screen and half hour; a `?s=`
    naming no screen counts nothing)."""
    given = request.args.get("s") or None
    scans.record(notice, kind, given,
                 scans.client_key(request.remote_addr, request.headers.get("User-Agent")))


def _notice_or_404(code: str) -> Notice:
    notice = notices.get_by_code(code) if CODE_RE.match(code) else None
    if notice is None:
        abort(404)
    return notice


def _public_notice(code: str) -> tuple[Notice, str]:
    """A notice residents may look at, and its state; a friendly 404 for anything else."""
    notice = notices.get_by_code(code) if CODE_RE.match(code) else None
    state = notices.public_state(notice) if notice is not None else "not_published"
    if notice is None or state == "not_published":
        raise _NoSuchNotice(code)
    return notice, state


class _NoSuchNotice(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@bp.errorhandler(_NoSuchNotice)
def _no_such_notice(exc: _NoSuchNotice) -> tuple[Any, int]:
    if request.path.endswith(".json"):
        return _cors(json_error(404, _("No published notice has this code.")))
    message = _(
        "No published notice has the code “%(code)s”. Please check the code under the QR "
        "code on the screen and try again.",
        code=exc.code[:12],
    )
    return render_template("error.html", code=404, message=message, code_form=True), 404


def local_datetime(value: datetime | None) -> str:
    """A UTC time as residents read it: the local date in words and the time (14:00)."""
    if value is None:
        return ""
    return f"{format_date(value, 'long')} {format_time(value, 'HH:mm')}"


def local_date(value: datetime | None) -> str:
    return format_date(value, "long") if value is not None else ""


def category_style(category: Category) -> str:
    """Badge colours: the category's colour with white or black text, whichever reads better."""
    color = category.color if COLOR_RE.match(category.color or "") else "#b71c1c"
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    text = "#111" if luminance > 150 else "#fff"
    return f"background:{color};color:{text}"


def category_name(category: Category, lang: str) -> str:
    return category.name_en if lang == "en" and category.name_en else category.name


def _region_names(regions: list[Region]) -> list[str]:
    return [r.full_name for r in regions]


def _client_hash() -> str:
    """Who is asking, without storing who: a keyed hash of the address and browser."""
    secret = current_app.config["SECRET_KEY"]
    agent = request.headers.get("User-Agent", "")
    raw = f"{secret}\n{request.remote_addr or ''}\n{agent}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _form_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="cunping.feedback-form")


def form_token(code: str, issued_at: float | None = None) -> str:
    """A signed token saying when the feedback form for notice `code` was served, with a
    nonce of its own: a form is sent once (feedback.submit)."""
    issued = int(time.time() if issued_at is None else issued_at)
    return str(_form_serializer().dumps({"c": code, "t": issued, "n": secrets.token_urlsafe(12)}))


def _check_form_token(code: str, token: str) -> tuple[str | None, str | None]:
    """(None, the form's nonce) when the token is fine, else (the reason to show the person,
    None)."""
    expired = _("The form has expired. Please send your question again.")
    try:
        data = _form_serializer().loads(token or "")
    except BadSignature:
        return expired, None
    if not isinstance(data, dict) or data.get("c") != code or not isinstance(data.get("t"), int):
        return expired, None
    nonce = data.get("n")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 24:
        return expired, None
    age = time.time() - data["t"]
    if age > FORM_MAX_SECONDS or age < -60:
        return expired, None
    if age < FORM_MIN_SECONDS:
        return _("That was very fast. Please check your question and send it again."), None
    return None, nonce


def _app_links(notice: Notice) -> dict[str, str]:
    """Where the "open in the app" and "download the app" buttons go (empty: not shown)."""
    links: dict[str, str] = {}
    if _deep_link(notice.code):
        links["open"] = url_for("public.open_in_app", code=notice.code)
    if _download_url():
        links["download"] = url_for("public.download_app", code=notice.code)
    return links


def _deep_link(code: str) -> str | None:
    template = (current_app.config.get("APP_DEEPLINK_TEMPLATE") or "").strip()
    if not template or "{code}" not in template:
        return None
    scheme = urlsplit(template).scheme.lower()
    if not scheme or scheme in ("javascript", "data", "vbscript", "file"):
        return None
    return template.replace("{code}", quote(code, safe=""))


def _download_url() -> str | None:
    url = (current_app.config.get("APP_DOWNLOAD_URL") or "").strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _absolute(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def _cors(result: Any) -> Any:
    """Let the county's app (any origin) read the public JSON."""
    response = current_app.make_response(result)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.app_template_filter("local_datetime")
def _local_datetime_filter(value: datetime | None) -> str:
    return local_datetime(value)


@bp.app_template_filter("local_date")
def _local_date_filter(value: datetime | None) -> str:
    return local_date(value)


@bp.after_request
def _headers(response: Response) -> Response:
    """The residents' pages load nothing from elsewhere and are never framed."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    size = request.args.get("text")
    if size in ("large", "normal"):  # the footer's switch, remembered for a year
        response.set_cookie(TEXT_COOKIE, size, max_age=365 * 86400, samesite="Lax")
    return response


TEXT_COOKIE = "cunping_text"


@bp.context_processor
def _text_size() -> dict[str, bool]:
    """Large type, as the reader chose it (this request's switch first, then the cookie)."""
    size = request.args.get("text") or request.cookies.get(TEXT_COOKIE)
    return {"large_text": size == "large"}


# --- pages -----------------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    return render_template("public/index.html", county=current_app.config.get("COUNTY_NAME", ""))


@bp.get("/n")
@bp.get("/n/")
def find() -> Response:
    """The landing page's "type the code" box (a GET form: works without JavaScript)."""
    code = (request.args.get("code") or "").strip()
    if not code:
        return redirect(url_for("public.index"))
    if not CODE_RE.match(code):
        raise _NoSuchNotice(code)
    return redirect(url_for("public.notice", code=code))


def _render_notice(
    notice: Notice,
    state: str,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int, dict[str, str]]:
    screen = _screen_code()
    rev = notice.public_revision
    assert rev is not None
    template = "public/withdrawn.html" if state == "withdrawn" else "public/notice.html"
    html = render_template(
        template,
        notice=notice,
        rev=rev,
        state=state,
        body_html=to_html(rev.body) if state != "withdrawn" else "",
        regions=_region_names(rev.targets),
        expired_at=(notice.ended_at if notice.ended_at and state == "expired" else rev.expire_at),
        badge_style=category_style(rev.category),
        answered=feedback.public_for(notice) if state != "withdrawn" else [],
        app_links=_app_links(notice),
        app_name=current_app.config.get("APP_NAME") or "",
        form=form or {},
        errors=errors or {},
        form_token=form_token(notice.code),
        honeypot=HONEYPOT,
        screen=screen,
        body_min=feedback.BODY_MIN,
        body_max=feedback.BODY_MAX,
        name_max=feedback.NAME_MAX,
        contact_max=feedback.CONTACT_MAX,
        category_name=category_name,
    )
    # The page carries a CSRF token for this visitor: never cached by proxies.
    return html, status, {"Cache-Control": "private, no-cache"}


@bp.get("/n/<code>")
def notice(code: str) -> Any:
    notice, state = _public_notice(code)
    if code != notice.code:  # typed in another case, or 0 for o: the page's own address
        return redirect(url_for("public.notice", code=notice.code, **request.args), 301)
    # After sending a question the browser is redirected here: that is not a new scan.
    if not get_flashed_messages(category_filter=[SENT]):
        _scan(notice, "view")
    return _render_notice(notice, state)


@bp.post("/n/<code>/feedback")
@limiter.limit(
    lambda: current_app.config["FEEDBACK_RATE_LIMIT"],
    key_func=lambda: f"feedback:{request.remote_addr}",
    # Sending a question that is too short again is not spam: only stored or refused
    # submissions count against the limit.
    deduct_when=lambda response: response.status_code != 422,
)
def send_feedback(code: str) -> Any:
    notice, state = _public_notice(code)
    screen = _screen_code()
    back = url_for("public.notice", code=notice.code, s=screen) + "#feedback"
    form = {k: request.form.get(k, "") for k in ("name", "contact", "body")}
    if request.form.get(HONEYPOT):
        # Looks like success to a bot; nothing is stored.
        flash(_("Received. The village committee will answer within 10 days."), SENT)
        return redirect(back, 303)
    if state == "withdrawn":
        errors = {"body": _("This notice was withdrawn; questions are closed.")}
        return _render_notice(notice, state, form=form, errors=errors, status=422)
    problem, nonce = _check_form_token(notice.code, request.form.get("t", ""))
    if problem:
        return _render_notice(notice, state, form=form, errors={"form": problem}, status=422)
    try:
        feedback.submit(
            notice,
            body=form["body"],
            name=form["name"],
            contact=form["contact"],
            client_hash=_client_hash(),
            screen_code=screen,
            form_nonce=nonce,
        )
    except ValidationError as exc:
        return _render_notice(notice, state, form=form, errors=exc.errors, status=422)
    except ServiceError as exc:
        return _render_notice(notice, state, form=form, errors={"form": exc.message}, status=422)
    flash(_("Received. The village committee will answer within 10 days."), SENT)
    return redirect(back, 303)


@bp.get("/n/<code>/open")
def open_in_app(code: str) -> Response:
    """Count the click, then hand over to the county's app through its deep link."""
    notice, _state = _public_notice(code)
    target = _deep_link(notice.code)
    if target is None:
        abort(404)
    _scan(notice, "app_open")
    return redirect(target, 302)


@bp.get("/n/<code>/app")
def download_app(code: str) -> Response:
    """Count the click, then send the resident to the app's download page."""
    notice, _state = _public_notice(code)
    target = _download_url()
    if target is None:
        abort(404)
    _scan(notice, "app_download")
    return redirect(target, 302)


# --- for the county's app and for print -----------------------------------------------------


@bp.get("/n/<code>.json")
def notice_json(code: str) -> Any:
    notice, state = _public_notice(code)
    rev = notice.public_revision
    assert rev is not None
    base = current_app.config["PUBLIC_BASE_URL"]
    data: dict[str, Any] = {
        "code": notice.code,
        "url": qr.notice_url(base, notice.code),
        "state": state,
    }
    if state == "withdrawn":
        data["reason"] = notice.withdraw_reason
        data["withdrawn_at"] = _iso(notice.ended_at)
    else:
        data.update(
            category={"key": rev.category.key, "name": rev.category.name},
            title=rev.title,
            body=rev.body,
            body_html=str(to_html(rev.body)),
            regions=[
                {"code": r.code, "name": r.name, "full_name": r.full_name} for r in rev.targets
            ],
            published_at=_iso(notice.published_at),
            first_published_at=_iso(notice.first_published_at),
            expire_at=_iso(rev.expire_at),
            images=[_absolute(url_for("public.media", filename=i.filename)) for i in rev.images],
            questions=[
                {"question": f.body, "answer": f.answer, "answered_at": _iso(f.answered_at)}
                for f in feedback.public_for(notice)
            ],
        )
    response = _cors(jsonify(data))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with its offset, so any client converts it correctly."""
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def _qr_url(notice: Notice) -> str:
    return qr.notice_url(current_app.config["PUBLIC_BASE_URL"], notice.code, _screen_code())


@bp.get("/n/<code>/qr.png")
def qr_png(code: str) -> Response:
    notice = _notice_or_404(code)  # also before publication: posters are printed early
    try:
        scale = int(request.args.get("scale", QR_SCALE_DEFAULT))
    except ValueError:
        scale = QR_SCALE_DEFAULT
    scale = min(max(scale, 1), QR_SCALE_MAX)
    body = qr.qr_png(_qr_url(notice), scale, label=_code_label(notice))
    response = current_app.response_class(body, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Cookie"  # the label's language
    return response


def _code_label(notice: Notice) -> str:
    """What is printed under a notice's QR code: the code a resident can type instead."""
    return f"{_('Code')} {notice.code}"


@bp.get("/n/<code>/qr.svg")
def qr_svg(code: str) -> Response:
    notice = _notice_or_404(code)
    body = qr.qr_svg(_qr_url(notice), title=notice.code, label=_code_label(notice))
    response = current_app.response_class(body, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Cookie"
    return response


@bp.get("/media/<filename>")
def media(filename: str) -> Response:
    """An uploaded picture, by its content-hash name; only names the database knows."""
    image = images.by_filename(filename)
    if image is None:
        abort(404)
    response = send_from_directory(
        current_app.config["UPLOAD_FOLDER"],
        image.filename,
        mimetype=image.mime,
        max_age=MEDIA_MAX_AGE,
    )
    response.headers["Cache-Control"] = f"public, max-age={MEDIA_MAX_AGE}, immutable"
    return response
