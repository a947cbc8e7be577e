"""Screens: the list with online/offline and what each shows, pairing a new screen by the code
it shows, renaming, moving, revoking and issuing a new token; and previews of a notice drawn
by the player's own renderer at the resolutions of the screens it is aimed at.

Every read and write goes through server.services; their errors become messages on the page.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import format_datetime, format_timedelta, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from PIL import Image as PILImage
from werkzeug.wrappers import Response
from wtforms import BooleanField, SelectField, StringField, TextAreaField

from admin import bp
from admin.guards import form_errors, login_required, me
from server.extensions import db
from server.models import Notice, Region, Revision, Screen, User
from server.models.base import utcnow
from server.services import notices, playlist, regions, screen_views
from server.services import screens as screen_service
from server.services.errors import NotFound, PermissionDenied, ServiceError, ValidationError

Page = str | tuple[str, int] | Response

# Sizes a preview may be asked for besides those of the targeted screens (the player's own).
STANDARD_SIZES = {(1920, 1080), (1280, 720), (1080, 1920)}
PREVIEW_CACHE_SIZE = 64  # rendered notices (all pages of one revision at one size)
STATE_FILTERS = {"online": _l("Online"), "offline": _l("Offline")}
# A screen clock this far off the server's is pointed out (the player corrects for it, but a
# technician should fix the box: its logs and anything else on it go by the wrong time).
CLOCK_WARN_SECONDS = 60


# --- forms ---------------------------------------------------------------------------------


class PairForm(FlaskForm):
    code = StringField(_l("Pairing code"), render_kw={"maxlength": 7, "inputmode": "numeric",
                                                      "autocomplete": "off"})
    # A screen stands in a village, or in a town's or county's service hall.
    region = SelectField(_l("Where it stands"), choices=[], validate_choice=False)
    name = StringField(_l("Screen name"), render_kw={"maxlength": screen_service.NAME_MAX})


class ScreenForm(FlaskForm):
    name = StringField(_l("Screen name"), render_kw={"maxlength": screen_service.NAME_MAX})
    region = SelectField(_l("Region"), choices=[], validate_choice=False)


class RevokeForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), render_kw={"rows": 2, "maxlength": 500})
    confirm = BooleanField(_l("Yes, this screen must stop showing notices now"))


# --- helpers -------------------------------------------------------------------------------


def manageable_regions(user: User) -> list[Region]:
    """Regions where `user` may put screens, in tree order."""
    return [r for r in regions.tree_for(user) if screen_service.can_manage(user, r)]


def _region_choices(nodes: list[Region]) -> list[tuple[str, str]]:
    top = min((r.depth for r in nodes), default=0)
    return [(str(r.id), "\u3000" * (r.depth - top) + r.name) for r in nodes]


def _chosen_region(value: str | None, allowed: list[Region]) -> Region | None:
    """The region a select sent, looked up; None for empty or junk. Regions outside the user's
    scope are still returned, so the service refuses them with its message."""
    if not value or not str(value).isdigit():
        return None
    found = next((r for r in allowed if r.id == int(value)), None)
    if found is not None:
        return found
    try:
        return regions.get(int(value))
    except NotFound:
        return None


def _screen(user: User, screen_id: int) -> Screen:
    screen = screen_views.get_by_id(screen_id)
    if screen is None:
        raise NotFound(_("No screen with this number."))
    if not screen_service.can_manage(user, screen.region):
        raise PermissionDenied(_("This screen is outside your regions."))
    return screen


def last_seen(value: datetime | None) -> str:
    """“3 minutes ago” (localised), or “never”."""
    if value is None:
        return _("never connected")
    return format_timedelta(value - utcnow(), add_direction=True, threshold=0.9)


def _amount(seconds: int) -> str:
    """“2 h”, “5 min”, “3 days”: rounded to the largest unit that fits (days from 2 days)."""
    if seconds >= 2 * 86400:
        days = round(seconds / 86400)
        return ngettext("%(num)d day", "%(num)d days", days)
    if seconds >= 3600:
        return _("%(n)d h", n=round(seconds / 3600))
    return _("%(n)d min", n=max(1, round(seconds / 60)))


@bp.app_template_global("screen_clock_note")
def clock_note(offset_s: int | None) -> str | None:
    """“screen clock 2 h behind” (localised) when the screen's clock is at least
    CLOCK_WARN_SECONDS off the server's; None when it is close or not reported. `offset_s` is
    the server's clock minus the screen's: positive, the screen is behind."""
    if offset_s is None or abs(offset_s) < CLOCK_WARN_SECONDS:
        return None
    amount = _amount(abs(offset_s))
    if offset_s > 0:
        return _("screen clock %(amount)s behind", amount=amount)
    return _("screen clock %(amount)s ahead", amount=amount)


@bp.app_template_global("screen_local_time")
def _local_time(value: datetime | None) -> str:
    return format_datetime(value, "yyyy-MM-dd HH:mm:ss") if value is not None else "—"


def _rollback_failed(form: FlaskForm, exc: ServiceError) -> int:
    db.session.rollback()
    if isinstance(exc, ValidationError):
        form_errors(form, exc)
    else:
        form.form_errors.append(exc.message)
    return exc.status if exc.status != 403 else 422


# --- list and pairing ----------------------------------------------------------------------


def _list_page(pair_form: PairForm | None = None, status: int = 200) -> tuple[str, int]:
    user = me()
    scope = manageable_regions(user)
    form = pair_form or PairForm(formdata=None)
    form.region.choices = [("", _("Choose its village, town or county")),
                           *_region_choices(scope)]
    everything = screen_service.list_for(user)
    region_id = request.args.get("region", type=int)
    region = next((r for r in scope if r.id == region_id), None)
    state = request.args.get("state", "")
    if state not in STATE_FILTERS:
        state = ""
    now = utcnow()
    rows = []
    for screen in everything:
        if region is not None and not region.contains(screen.region):
            continue
        row = screen_views.status(screen, now)
        if state and row.online != (state == "online"):
            continue
        rows.append(row)
    online = sum(1 for s in everything if screen_service.is_online(s, now))
    return render_template(
        "admin/screens/list.html",
        rows=rows,
        total=len(everything),
        online=online,
        form=form,
        scope=scope,
        top=min((r.depth for r in scope), default=0),
        filters={"region": region.id if region else "", "state": state},
        state_filters=STATE_FILTERS,
        last_seen=last_seen,
    ), status


@bp.get("/screens")
@login_required
def screen_list() -> Page:
    return _list_page()


@bp.post("/screens/pair")
@login_required
def screen_pair() -> Page:
    user = me()
    form = PairForm()
    scope = manageable_regions(user)
    if not form.validate_on_submit():
        return _list_page(form, 422)
    region = _chosen_region(form.region.data, scope)
    code = (form.code.data or "").strip().replace(" ", "")
    if region is None:
        form.region.errors = [_("Choose the village, town or county the screen stands in.")]
    if not (len(code) == 6 and code.isdigit()):
        form.code.errors = [_("Type the 6 digits shown on the screen.")]
    if form.region.errors or form.code.errors:
        if not (form.name.data or "").strip():
            form.name.errors = [_("Give the screen a name.")]
        return _list_page(form, 422)
    assert region is not None
    try:
        screen = screen_service.claim_pairing(user, code, region, form.name.data or "")
    except ServiceError as exc:
        if isinstance(exc, PermissionDenied):
            db.session.rollback()
            form.region.errors = [exc.message]
            return _list_page(form, 403)
        return _list_page(form, _rollback_failed(form, exc))
    flash(_("Screen %(name)s is paired: it starts showing the notices of %(region)s.",
            name=screen.name, region=screen.region.name), "success")
    return redirect(url_for("admin.screen_detail", screen_id=screen.id))


# --- one screen ----------------------------------------------------------------------------


def _detail_page(
    screen: Screen,
    *,
    form: ScreenForm | None = None,
    revoke_form: RevokeForm | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    user = me()
    scope = manageable_regions(user)
    if form is None:
        form = ScreenForm(formdata=None, name=screen.name, region=str(screen.region_id))
    form.region.choices = _region_choices(scope)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return render_template(
        "admin/screens/detail.html",
        screen=screen,
        row=screen_views.status(screen),
        form=form,
        revoke_form=revoke_form or RevokeForm(formdata=None),
        token_form=FlaskForm(formdata=None),
        new_token=new_token,
        public_url=f"{base}/s/{screen.code}",
        server_url=base,
        last_seen=last_seen,
    ), status


@bp.route("/screens/<int:screen_id>", methods=["GET", "POST"])
@login_required
def screen_detail(screen_id: int) -> Page:
    user = me()
    screen = _screen(user, screen_id)
    if request.method == "GET":
        return _detail_page(screen)
    form = ScreenForm()
    if not form.validate_on_submit():
        return _detail_page(screen, form=form, status=422)
    region = _chosen_region(form.region.data, manageable_regions(user))
    if region is None:
        form.region.errors = [_("Choose a region.")]
        return _detail_page(screen, form=form, status=422)
    try:
        screen_service.change(user, screen, name=form.name.data or "", region=region)
    except ServiceError as exc:
        return _detail_page(screen, form=form, status=_rollback_failed(form, exc))
    flash(_("Screen %(name)s saved.", name=screen.name), "success")
    return redirect(url_for("admin.screen_detail", screen_id=screen.id))


@bp.get("/screens/<int:screen_id>/state.json")
@login_required
def screen_state(screen_id: int) -> Response:
    """Is the screen connected? The detail page of a screen just paired asks until it is
    (admin/static/screens.js), so that it does not say "never connected" until a reload."""
    screen = _screen(me(), screen_id)
    response = jsonify(online=screen_service.is_online(screen),
                       seen=screen.last_seen_at is not None)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/screens/<int:screen_id>/revoke")
@login_required
def screen_revoke(screen_id: int) -> Page:
    user = me()
    screen = _screen(user, screen_id)
    form = RevokeForm()
    if not form.validate_on_submit():
        return _detail_page(screen, revoke_form=form, status=422)
    reason = (form.reason.data or "").strip()
    if not reason:
        form.reason.errors = [_("Say why the screen is revoked.")]
    if not form.confirm.data:
        form.confirm.errors = [_("Tick the box to confirm.")]
    if form.reason.errors or form.confirm.errors:
        return _detail_page(screen, revoke_form=form, status=422)
    try:
        screen_service.revoke(user, screen, reason)
    except ServiceError as exc:
        return _detail_page(screen, revoke_form=form, status=_rollback_failed(form, exc))
    flash(_("Screen %(name)s is revoked: its token no longer works.", name=screen.name),
          "success")
    return redirect(url_for("admin.screen_detail", screen_id=screen.id))


@bp.post("/screens/<int:screen_id>/token")
@login_required
def screen_token(screen_id: int) -> Page:
    user = me()
    screen = _screen(user, screen_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    token = screen_views.reissue_token(user, screen)
    # Rendered, not redirected: the token is shown this once and stored nowhere.
    return _detail_page(screen, new_token=token, status=201)


# --- previews of a notice on the screens ---------------------------------------------------


class _PreviewCache:
    """Rendered pages (PNG bytes) per (revision id, its last change, width, height)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[Any, ...], list[bytes]] = OrderedDict()
        self.lock = threading.Lock()
        self.renders = 0

    def get(self, key: tuple[Any, ...]) -> list[bytes] | None:
        with self.lock:
            pages = self.entries.get(key)
            if pages is not None:
                self.entries.move_to_end(key)
            return pages

    def put(self, key: tuple[Any, ...], pages: list[bytes]) -> None:
        with self.lock:
            self.entries[key] = pages
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


def preview_cache() -> _PreviewCache:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions.setdefault(  # type: ignore[no-any-return]
        "cunping_previews", _PreviewCache(PREVIEW_CACHE_SIZE)
    )


def preview_fonts() -> Any:
    """The player's fonts, or None when no font that draws Chinese is installed."""
    from player.fonts import FontError, find_fonts

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "cunping_preview_fonts" not in app.extensions:
        try:
            app.extensions["cunping_preview_fonts"] = find_fonts(
                app.config.get("PREVIEW_FONT") or None
            )
        except FontError:
            app.extensions["cunping_preview_fonts"] = None
    return app.extensions["cunping_preview_fonts"]


def _images(rev: Revision, payload: dict[str, Any]) -> dict[str, PILImage.Image]:
    """The revision's pictures from the upload folder, keyed by the URL in the payload."""
    out: dict[str, PILImage.Image] = {}
    folder = current_app.config["UPLOAD_FOLDER"]
    for url, image in zip(payload["images"], rev.images, strict=False):
        try:
            with PILImage.open(os.path.join(folder, image.filename)) as img:
                img.load()
                out[url] = img.copy()
        except (OSError, ValueError):
            continue  # a missing or broken picture: the rest still renders, as on a screen
    return out


def render_preview(notice: Notice, rev: Revision, size: tuple[int, int]) -> list[bytes]:
    """Every page of `rev` as the player draws it at `size`, as PNG bytes (cached)."""
    from player.render import Renderer

    key = (rev.id, rev.updated_at, size)
    cache = preview_cache()
    pages = cache.get(key)
    if pages is not None:
        return pages
    fonts = preview_fonts()
    assert fonts is not None
    payload = playlist.revision_payload(notice, rev)
    images = _images(rev, payload)
    rendered = Renderer(fonts, size).notice_pages(payload, payload["url"], images=images)
    pages = []
    for img in rendered:
        out = io.BytesIO()
        img.save(out, "PNG", optimize=False)
        pages.append(out.getvalue())
    cache.renders += 1
    cache.put(key, pages)
    return pages


def _viewable_notice(user: User, notice_id: int) -> Notice:
    notice = notices.get_by_id(notice_id)
    if not notices.can(user, "view", notice):
        raise PermissionDenied(_("This notice is outside your regions."))
    return notice


@bp.app_template_global("screen_preview")
def screen_preview(notice: Notice) -> dict[str, Any]:
    """What the notice page's "Preview on screens" section needs."""
    rev = notice.current
    return {
        "sizes": screen_views.preview_sizes(rev),
        "fonts": preview_fonts() is not None,
        "revision": rev.number,
    }


@bp.get("/notices/<int:notice_id>/preview")
@login_required
def notice_preview(notice_id: int) -> Page:
    notice = _viewable_notice(me(), notice_id)
    rev = notice.current
    sizes = screen_views.preview_sizes(rev)
    fonts = preview_fonts() is not None
    pages = {size: len(render_preview(notice, rev, size)) for size in sizes} if fonts else {}
    return render_template(
        "admin/screens/preview.html", notice=notice, rev=rev, sizes=sizes, pages=pages,
        fonts=fonts,
    )


@bp.get("/notices/<int:notice_id>/preview/<int:width>x<int:height>/<int:page>.png")
@login_required
def notice_preview_png(notice_id: int, width: int, height: int, page: int) -> Response:
    notice = _viewable_notice(me(), notice_id)
    rev = notice.current
    size = (width, height)
    if size not in STANDARD_SIZES and size not in screen_views.preview_sizes(rev):
        abort(404)
    if preview_fonts() is None:
        abort(503, _("No font that draws Chinese is installed on the server, so previews "
                     "cannot be drawn. Install fonts-noto-cjk."))
    pages = render_preview(notice, rev, size)
    if not 1 <= page <= len(pages):
        abort(404)
    response = current_app.response_class(pages[page - 1], mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=60"
    return response
