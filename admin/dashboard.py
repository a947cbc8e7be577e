"""The county's live dashboard: screens online and offline now (updated live over the
"/dashboard" Socket.IO namespace), the boot rate (开机率) of the last 30 days per day and per
town with a chart drawn here as SVG, the screens offline for long, what each screen shows, and
screenshots taken on request.

Numbers are rendered by the server (the page works without JavaScript); dashboard.js refetches
`counts.json` when a screen comes or goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_date, format_timedelta, ngettext
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from admin import bp
from admin.guards import login_required, me, page_arg
from player import protocol
from server.extensions import db
from server.models import Region, Screen, User
from server.models.base import utcnow
from server.services import dashboard as board
from server.services import presence, screen_views, screenshots
from server.services import screens as screen_service
from server.services.errors import NotFound, PermissionDenied, ServiceError

Page = str | tuple[str, int] | Response
F = TypeVar("F", bound=Callable[..., Any])
OFFLINE_ROWS = 10  # screens offline for long shown before "show all"


# --- the boot-rate chart (SVG, drawn here: no chart library) -------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    tone: str  # good | fair | poor | none
    label: str  # the tooltip
    day: str  # the x-axis label (or "")


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, "50%")
    target_y: float  # the 80 % line (the reference deployment's figure)


TARGET = 0.8


def _tone(rate: float | None) -> str:
    if rate is None:
        return "none"
    return "good" if rate >= TARGET else "fair" if rate >= 0.5 else "poor"


def boot_chart(rates: presence.BootRate) -> Chart:
    width, height, left, top, bottom, right = 960, 220, 44, 12, 30, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(rates.days), 1)
    step = plot_w / n
    bars = []
    for i, day in enumerate(rates.days):
        rate = rates.totals[day]
        value = rate.rate or 0.0
        h = round(value * plot_h, 1)
        if rate.existing:
            label = _("%(day)s: %(percent)s%% (%(seen)s of %(existing)s screens on)",
                      day=format_date(day, "yyyy-MM-dd"), percent=rate.percent, seen=rate.seen,
                      existing=rate.existing)
        else:
            label = _("%(day)s: no screens yet", day=format_date(day, "yyyy-MM-dd"))
        show_day = i % 5 == (n - 1) % 5  # every fifth day, ending on today
        bars.append(Bar(
            x=round(left + i * step + step * 0.15, 1), y=round(top + plot_h - h, 1),
            width=round(step * 0.7, 1), height=h, tone=_tone(rate.rate), label=label,
            day=format_date(day, "MM-dd") if show_day else "",
        ))
    ticks = [(round(top + plot_h - f * plot_h, 1), f"{int(f * 100)}%") for f in
             (0, 0.25, 0.5, 0.75, 1)]
    return Chart(width, height, left, top, plot_w, plot_h, bars, ticks,
                 round(top + plot_h - TARGET * plot_h, 1))


# --- helpers -------------------------------------------------------------------------------


def _roots(user: User) -> list[Region]:
    try:
        return presence.require_dashboard(user)
    except PermissionDenied as exc:
        abort(403, exc.message)


def counts_payload(user: User, now: datetime | None = None, page: int = 1) -> dict[str, object]:
    """What the page shows at the top, as JSON (dashboard.js refetches it), and whether each
    screen listed on `page` of "what each screen shows" is online."""
    now = now or utcnow()
    roots = _roots(user)
    counts = board.counts(roots, now)
    today = presence.boot_rate(roots, days=1).overall
    listed = board.screens_page(roots, now, page, board.SCREENS_PER_PAGE)
    return {
        **counts.as_dict(),
        "offline_long": board.offline_count(roots, now),
        "boot_today": today.percent,
        "screens": {s.code: screen_service.is_online(s, now) for s in listed},
        "at": now.isoformat(timespec="seconds") + "Z",
    }


@bp.app_template_filter("minutes_text")
def minutes_text(minutes: int) -> str:
    """120 → “2 hours”, 90 → “90 minutes” (localised)."""
    if minutes and minutes % 60 == 0:
        return ngettext("%(num)s hour", "%(num)s hours", minutes // 60)
    return ngettext("%(num)s minute", "%(num)s minutes", minutes)


def level_color(level: int | None) -> str:
    return protocol.LEVEL_COLORS.get(level or 1, protocol.LEVEL_COLORS[1])


def offline_duration(since: datetime, now: datetime) -> str:
    return format_timedelta(now - since, threshold=0.9)


def _screen(user: User, screen_id: int) -> Screen:
    screen = screen_views.get_by_id(screen_id)
    if screen is None:
        raise NotFound(_("No screen with this number."))
    if not screenshots.can_view(user, screen):
        raise PermissionDenied(_("This screen is outside your regions."))
    return screen


def _service_page(view: F) -> F:
    """A screen not found or outside the user's regions: the error page with its status."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except (NotFound, PermissionDenied) as exc:
            abort(exc.status, exc.message)

    return cast(F, wrapped)


# --- pages ---------------------------------------------------------------------------------


@bp.get("/dashboard")
@login_required
def dashboard() -> Page:
    user = me()
    roots = _roots(user)
    now = utcnow()
    counts = board.counts(roots, now)
    rates = presence.boot_rate(roots)
    offline_total = board.offline_count(roots, now)
    show_all = request.args.get("offline") == "all"
    offline = board.offline_for_long(roots, now, None if show_all else OFFLINE_ROWS)
    # What online screens show matters most: they come first. A page at a time: a county has
    # thousands of screens (the screens page lists them all, with filters).
    pages = max((counts.total + board.SCREENS_PER_PAGE - 1) // board.SCREENS_PER_PAGE, 1)
    page = min(page_arg(), pages)
    listed = board.screens_page(roots, now, page, board.SCREENS_PER_PAGE)
    return render_template(
        "admin/dashboard/index.html",
        roots=roots,
        counts=counts,
        rates=rates,
        today=rates.totals[rates.days[-1]],
        chart=boot_chart(rates),
        offline=offline,
        offline_total=offline_total,
        offline_shown=len(offline) if show_all else OFFLINE_ROWS,
        threshold_minutes=int(current_app.config["OFFLINE_ALERT_MINUTES"]),
        rows=listed,
        page=page,
        pages=pages,
        more=counts.total - len(listed),
        online={s.id: screen_service.is_online(s, now) for s in listed},
        showing=presence.showing(listed),
        manageable={s.id for s in [*listed, *(r.screen for r in offline)]
                    if screen_service.can_manage(user, s.region)},
        shot_form=FlaskForm(formdata=None),
        now=now,
        offline_duration=offline_duration,
        tone=_tone,
        level_color=level_color,
    )


@bp.get("/dashboard/counts.json")
@login_required
def dashboard_counts() -> Response:
    response = jsonify(counts_payload(me(), page=page_arg()))
    response.headers["Cache-Control"] = "no-store"
    return response


# --- screenshots ---------------------------------------------------------------------------


def _shot_status(screen: Screen) -> dict[str, object]:
    shot = screenshots.latest(screen)
    waiting = screenshots.pending(screen)
    latest = None
    if shot is not None and shot.taken_at is not None:
        latest = {
            "url": url_for("admin.dashboard_screenshot_jpg", screen_id=screen.id, v=shot.id),
            "taken_at": shot.taken_at.isoformat(timespec="seconds") + "Z",
            "width": shot.width,
            "height": shot.height,
        }
    return {"pending": waiting is not None, "latest": latest}


@bp.get("/dashboard/screens/<int:screen_id>")
@login_required
@_service_page
def dashboard_screen(screen_id: int) -> Page:
    user = me()
    screen = _screen(user, screen_id)
    now = utcnow()
    return render_template(
        "admin/dashboard/screen.html",
        screen=screen,
        online=screen_service.is_online(screen, now),
        showing=presence.showing([screen])[screen.id],
        shot=screenshots.latest(screen),
        pending=screenshots.pending(screen, now) is not None,
        may_request=screen_service.can_manage(user, screen.region),
        shot_form=FlaskForm(formdata=None),
        status=_shot_status(screen),
        level_color=level_color,
    )


@bp.post("/dashboard/screens/<int:screen_id>/screenshot")
@login_required
@_service_page
def dashboard_screenshot(screen_id: int) -> Page:
    user = me()
    screen = _screen(user, screen_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    try:
        screenshots.request(user, screen)
    except ServiceError as exc:
        db.session.rollback()
        if isinstance(exc, PermissionDenied):
            abort(403, exc.message)
        flash(exc.message, "error")
    else:
        flash(_("The screen was asked for what it shows; the picture appears here in a few "
                "seconds."), "success")
    return redirect(url_for("admin.dashboard_screen", screen_id=screen.id))


@bp.get("/dashboard/screens/<int:screen_id>/screenshot.json")
@login_required
@_service_page
def dashboard_screenshot_status(screen_id: int) -> Response:
    response = jsonify(_shot_status(_screen(me(), screen_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/dashboard/screens/<int:screen_id>/screenshot.jpg")
@login_required
@_service_page
def dashboard_screenshot_jpg(screen_id: int) -> Response:
    shot = screenshots.latest(_screen(me(), screen_id))
    if shot is None or shot.image is None:
        abort(404)
    response = current_app.response_class(shot.image, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
