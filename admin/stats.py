"""Statistics: proof of play, residents' scans and feedback over a period (the last 30 days
unless asked), with charts drawn on the server, a notice's own proof of play, and CSV files.

Everything is read through server.services.stats, which keeps each user to their regions.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Response, render_template, request, stream_with_context, url_for
from flask_babel import format_date
from flask_babel import gettext as _

from admin import bp
from admin.guards import login_required, me
from admin.notices import shows_service_errors
from server.models import Notice, User
from server.services import charts, stats
from server.services import screens as screen_service
from server.services.errors import ValidationError

Page = str | tuple[str, int] | Response
TOP_NOTICES = 10
PROOF_ROWS_SHOWN = 200


def duration(seconds: float) -> str:
    """Time on screen as people read it: 2.5 hours, 40 minutes, 15 seconds."""
    seconds = int(seconds)
    if seconds >= 100 * 3600:
        return _("%(n)s h", n=f"{seconds / 3600:,.0f}")
    if seconds >= 3600:
        return _("%(n)s h", n=f"{seconds / 3600:,.1f}".removesuffix(".0"))
    if seconds >= 60:
        return _("%(n)s min", n=round(seconds / 60))
    return _("%(n)s s", n=seconds)


def _period() -> tuple[stats.Period, list[str]]:
    """The period in the query string, or the default one and why the asked one was not used."""
    start, end = request.args.get("start"), request.args.get("end")
    errors = []
    start_day, end_day = stats.parse_day(start), stats.parse_day(end)
    if (start and start_day is None) or (end and end_day is None):
        errors.append(_("Dates are written as YYYY-MM-DD."))
    try:
        return stats.period(start_day, end_day), errors
    except ValidationError as exc:
        return stats.period(), [*errors, *exc.errors.values()]


def _presets(endpoint: str, **kwargs: Any) -> list[tuple[str, str]]:
    today = stats.period().end
    out = []
    for days in (7, 30, 90, 365):
        start = today - timedelta(days=days - 1)
        out.append((_("Last %(n)s days", n=days),
                    url_for(endpoint, start=start.isoformat(), end=today.isoformat(), **kwargs)))
    return out


def _day_label(day: date) -> str:
    return format_date(day, "M/d")


def _day_chart(rows: list[stats.DayRow], title: str) -> Any:
    return charts.line_chart(
        [(_day_label(r.day), r.plays) for r in rows],
        title=title,
        desc=_("Plays per day from %(start)s to %(end)s.", start=rows[0].day.isoformat(),
               end=rows[-1].day.isoformat()) if rows else "",
        empty=_("No plays in this period."),
    )


def _range_args(p: stats.Period) -> dict[str, str]:
    return {"start": p.start.isoformat(), "end": p.end.isoformat()}


def _can_open_screen(user: User) -> Any:
    return lambda screen: screen_service.can_manage(user, screen.region)


@bp.get("/stats")
@login_required
def stats_overview() -> Page:
    user = me()
    p, errors = _period()
    notices = stats.by_notice(user, p)
    top = sorted((r for r in notices if r.seconds), key=lambda r: -r.seconds)[:TOP_NOTICES]
    days = stats.by_day(user, p)
    return render_template(
        "admin/stats/overview.html",
        period=p,
        errors=errors,
        totals=stats.totals(user, p),
        notices=notices,
        screens=stats.by_screen(user, p),
        day_chart=_day_chart(days, _("Plays per day")),
        top_chart=charts.bar_chart(
            [(r.title, r.seconds) for r in top],
            title=_("Top notices by time on screen"),
            desc=_("The %(n)s notices shown longest in the period.", n=len(top)),
            value_format=duration,
            empty=_("No plays in this period."),
        ),
        presets=_presets("admin.stats_overview"),
        args=_range_args(p),
        duration=duration,
        can_open_screen=_can_open_screen(user),
    )


@bp.get("/stats/notice/<code>")
@login_required
@shows_service_errors
def stats_notice(code: str) -> Page:
    user = me()
    notice = stats.notice_for(user, code)
    p, errors = _period()
    report = stats.notice_report(user, notice, p)
    return render_template(
        "admin/stats/notice.html",
        notice=notice,
        title=stats.title_of(notice),
        report=report,
        period=p,
        errors=errors,
        day_chart=_day_chart(report.days, _("Plays per day of this notice")),
        screen_chart=charts.bar_chart(
            [(r.screen.name, r.seconds) for r in report.screens if r.seconds],
            title=_("Time on screen per screen"),
            value_format=duration,
            empty=_("No plays in this period."),
        ),
        proof=report.proof[:PROOF_ROWS_SHOWN],
        proof_cut=len(report.proof) > PROOF_ROWS_SHOWN,
        presets=_presets("admin.stats_notice", code=code),
        args=_range_args(p),
        duration=duration,
        can_open_screen=_can_open_screen(user),
    )


def csv_response(chunks: Any, name: str) -> Response:
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _filename(kind: str, p: stats.Period, notice: Notice | None = None) -> str:
    middle = f"-{notice.code}" if notice is not None else ""
    return f"cunping-{kind}{middle}-{p.start.isoformat()}-{p.end.isoformat()}.csv"


@bp.get("/stats/plays.csv")
@login_required
def stats_plays_csv() -> Page:
    user = me()
    p, _errors = _period()
    return csv_response(stream_with_context(stats.csv_chunks(user, p)), _filename("plays", p))


@bp.get("/stats/notice/<code>/plays.csv")
@login_required
@shows_service_errors
def stats_notice_csv(code: str) -> Page:
    user = me()
    notice = stats.notice_for(user, code)
    p, _errors = _period()
    return csv_response(stream_with_context(stats.csv_chunks(user, p, notice)),
                _filename("plays", p, notice))


@bp.get("/stats/notices.csv")
@login_required
def stats_notices_csv() -> Page:
    user = me()
    p, _errors = _period()
    header = [_("Notice code"), _("Notice title"), _("Plays"), _("Seconds"), _("Screens"),
              _("Days"), _("Scans"), _("Feedback")]
    rows = [[r.notice.code, r.title, r.plays, r.seconds, r.screens, r.days, r.scans, r.feedback]
            for r in stats.by_notice(user, p)]
    return csv_response(stats.rows_csv(header, rows), _filename("notices", p))


@bp.get("/stats/screens.csv")
@login_required
def stats_screens_csv() -> Page:
    user = me()
    p, _errors = _period()
    header = [_("Screen code"), _("Screen name"), _("Village"), _("Region"), _("Plays"),
              _("Seconds"), _("Notices"), _("Days"), _("Scans")]
    rows = [[r.screen.code, r.screen.name, r.screen.region.name, r.screen.region.full_name,
             r.plays, r.seconds, r.notices, r.days, r.scans] for r in stats.by_screen(user, p)]
    return csv_response(stats.rows_csv(header, rows), _filename("screens", p))
