"""Statistics for the admin: proof of play (PlayStat), residents' QR scans (ScanEvent) and
feedback, per notice, per screen and per day, and the proof-of-play CSV.

What a user sees is what happened in their regions (the subtrees of their grants):
- plays: on screens inside those regions;
- scans and feedback: those sent from a screen's code inside those regions, and those without a
  screen (a shared link) on notices aimed inside them.
A county-wide notice is counted for a village editor on the village's screens only; the county's
staff see the whole county. A notice's own report also needs permission to see the notice.
Days are the county's local days (CUNPING_TIMEZONE), both ends of a period included.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, Select, and_, distinct, false, func, or_, select
from sqlalchemy.orm import aliased

from server.extensions import db
from server.models import Feedback, Notice, PlayStat, Region, ScanEvent, Screen, User
from server.models.base import utcnow
from server.models.notices import revision_targets
from server.services import notices as notice_service
from server.services.errors import NotFound, PermissionDenied, ValidationError
from server.services.presence import local_day

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366 + 1  # as long as plays are kept by default
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_CHUNK = 500  # rows per piece of a streamed CSV


# --- the period --------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local days `start` to `end`, both included."""

    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """The naive-UTC instants where the period starts and where it has ended."""
        tz = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
        utc = ZoneInfo("UTC")

        def at(day: date) -> datetime:
            return datetime.combine(day, time(), tz).astimezone(utc).replace(tzinfo=None)

        return at(self.start), at(self.end + timedelta(days=1))


def period(start: date | None = None, end: date | None = None,
           now: datetime | None = None) -> Period:
    """The period asked for; by default the last DEFAULT_DAYS days up to today."""
    today = local_day(now or utcnow())
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ValidationError({"start": _("The start must not be after the end.")})
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationError({"start": _("At most %(n)s days at once.", n=MAX_DAYS)})
    return Period(start, end)


def parse_day(value: str | None) -> date | None:
    """A YYYY-MM-DD query argument, or None when empty or malformed."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


# --- scope -------------------------------------------------------------------------------


def _roots(user: User) -> list[Region]:
    return [g.region for g in user.grants] if user.is_active else []


def _inside(user: User, path: Any) -> ColumnElement[bool]:
    roots = _roots(user)
    if not roots:
        return false()
    return or_(*[path.startswith(root.path) for root in roots])


def _screen_scope(user: User) -> Select[tuple[int]]:
    """Ids of the screens in the user's regions."""
    return select(Screen.id).join(Region, Region.id == Screen.region_id).where(
        _inside(user, Region.path))


def _notices_aimed_inside(user: User) -> Select[tuple[int]]:
    """Ids of notices whose live (or, before publication, current) revision has a target in
    the user's regions."""
    target = aliased(Region)
    rev_id = func.coalesce(Notice.live_revision_id, Notice.pending_revision_id)
    return (
        select(Notice.id)
        .join(revision_targets, revision_targets.c.revision_id == rev_id)
        .join(target, target.id == revision_targets.c.region_id)
        .where(_inside(user, target.path))
    )


def _resident_scope(user: User, screen_code: Any, notice_id: Any) -> ColumnElement[bool]:
    """For scans and feedback: from a screen in the user's regions, or without a known screen
    on a notice aimed inside them."""
    known = select(Screen.id).where(Screen.code == screen_code)
    return or_(
        select(Screen.id)
        .join(Region, Region.id == Screen.region_id)
        .where(Screen.code == screen_code, _inside(user, Region.path))
        .exists(),
        and_(~known.exists(), notice_id.in_(_notices_aimed_inside(user))),
    )


def can_see_notice(user: User, notice: Notice) -> bool:
    return notice_service.can(user, "view", notice)


def notice_for(user: User, code: str) -> Notice:
    """The notice with `code` if the user may see its report."""
    notice = notice_service.get_by_code(code)
    if notice is None:
        raise NotFound(_("No notice with code %(code)s.", code=code))
    if not can_see_notice(user, notice):
        raise PermissionDenied(_("This notice is outside your regions."))
    return notice


def title_of(notice: Notice) -> str:
    rev = notice.live_revision or notice.pending_revision
    return rev.title if rev is not None else notice.code


# --- rows --------------------------------------------------------------------------------


@dataclass
class Totals:
    plays: int = 0
    seconds: int = 0
    screens: int = 0  # screens that reported plays
    notices: int = 0  # notices played
    scans: int = 0
    feedback: int = 0


@dataclass
class NoticeRow:
    notice: Notice
    plays: int = 0
    seconds: int = 0
    screens: int = 0
    days: int = 0
    scans: int = 0
    feedback: int = 0

    @property
    def title(self) -> str:
        return title_of(self.notice)


@dataclass
class ScreenRow:
    screen: Screen
    plays: int = 0
    seconds: int = 0
    notices: int = 0
    days: int = 0
    scans: int = 0


@dataclass
class DayRow:
    day: date
    plays: int = 0
    seconds: int = 0


@dataclass
class ProofRow:
    """One line of proof of play: a notice on a screen on a day."""

    notice_code: str
    notice_title: str
    screen_code: str
    screen_name: str
    village: str
    region: str
    day: date
    plays: int
    seconds: int


@dataclass
class NoticeReport:
    notice: Notice
    period: Period
    totals: Totals
    days: list[DayRow]
    screens: list[ScreenRow] = field(default_factory=list)
    proof: list[ProofRow] = field(default_factory=list)


def _plays_where(user: User, p: Period, notice: Notice | None = None) -> list[Any]:
    conds: list[Any] = [
        PlayStat.day >= p.start,
        PlayStat.day <= p.end,
        PlayStat.screen_id.in_(_screen_scope(user)),
    ]
    if notice is not None:
        conds.append(PlayStat.notice_id == notice.id)
    return conds


def _scans_where(user: User, p: Period, notice: Notice | None = None) -> list[Any]:
    since, until = p.utc_bounds()
    conds: list[Any] = [
        ScanEvent.kind == "view",
        ScanEvent.at >= since,
        ScanEvent.at < until,
        _resident_scope(user, ScanEvent.screen_code, ScanEvent.notice_id),
    ]
    if notice is not None:
        conds.append(ScanEvent.notice_id == notice.id)
    return conds


def _feedback_where(user: User, p: Period, notice: Notice | None = None) -> list[Any]:
    since, until = p.utc_bounds()
    conds: list[Any] = [
        Feedback.created_at >= since,
        Feedback.created_at < until,
        _resident_scope(user, Feedback.screen_code, Feedback.notice_id),
    ]
    if notice is not None:
        conds.append(Feedback.notice_id == notice.id)
    return conds


def totals(user: User, p: Period, notice: Notice | None = None) -> Totals:
    plays, seconds, screens, notices = db.session.execute(
        select(
            func.coalesce(func.sum(PlayStat.plays), 0),
            func.coalesce(func.sum(PlayStat.seconds), 0),
            func.count(distinct(PlayStat.screen_id)),
            func.count(distinct(PlayStat.notice_id)),
        ).where(*_plays_where(user, p, notice))
    ).one()
    scans = db.session.scalar(
        select(func.count(ScanEvent.id)).where(*_scans_where(user, p, notice)))
    feedback = db.session.scalar(
        select(func.count(Feedback.id)).where(*_feedback_where(user, p, notice)))
    return Totals(int(plays), int(seconds), int(screens), int(notices), scans or 0,
                  feedback or 0)


def by_notice(user: User, p: Period) -> list[NoticeRow]:
    """Every notice played, scanned or questioned in the period, most time on screen first."""
    rows: dict[int, NoticeRow] = {}
    played = db.session.execute(
        select(
            PlayStat.notice_id,
            func.sum(PlayStat.plays),
            func.sum(PlayStat.seconds),
            func.count(distinct(PlayStat.screen_id)),
            func.count(distinct(PlayStat.day)),
        )
        .where(*_plays_where(user, p))
        .group_by(PlayStat.notice_id)
    ).all()
    scans = dict(db.session.execute(  # type: ignore[arg-type]
        select(ScanEvent.notice_id, func.count(ScanEvent.id))
        .where(*_scans_where(user, p)).group_by(ScanEvent.notice_id)
    ).all())
    feedback = dict(db.session.execute(  # type: ignore[arg-type]
        select(Feedback.notice_id, func.count(Feedback.id))
        .where(*_feedback_where(user, p)).group_by(Feedback.notice_id)
    ).all())
    ids = {r[0] for r in played} | set(scans) | set(feedback)
    found = {n.id: n for n in db.session.scalars(select(Notice).where(Notice.id.in_(ids)))}
    for notice_id, count, seconds, screens, days in played:
        rows[notice_id] = NoticeRow(found[notice_id], int(count), int(seconds), screens, days)
    for notice_id in ids:
        row = rows.setdefault(notice_id, NoticeRow(found[notice_id]))
        row.scans = int(scans.get(notice_id, 0))
        row.feedback = int(feedback.get(notice_id, 0))
    return sorted(rows.values(), key=lambda r: (-r.seconds, -r.plays, -r.scans, r.notice.code))


def screens_in_scope(user: User) -> list[Screen]:
    return list(db.session.scalars(
        select(Screen).join(Region, Region.id == Screen.region_id)
        .where(_inside(user, Region.path)).order_by(Region.path, Screen.name, Screen.id)
    ))


def by_screen(user: User, p: Period, notice: Notice | None = None) -> list[ScreenRow]:
    """Every screen in the user's regions (also those that played nothing: a screen silent
    for a month is worth seeing), in tree order; with `notice`, only the plays of it and only
    the screens that played it or sent a scan of it."""
    played = {
        r[0]: r[1:]
        for r in db.session.execute(
            select(
                PlayStat.screen_id,
                func.sum(PlayStat.plays),
                func.sum(PlayStat.seconds),
                func.count(distinct(PlayStat.notice_id)),
                func.count(distinct(PlayStat.day)),
            )
            .where(*_plays_where(user, p, notice))
            .group_by(PlayStat.screen_id)
        ).all()
    }
    scans: dict[str, int] = dict(db.session.execute(  # type: ignore[arg-type]
        select(ScanEvent.screen_code, func.count(ScanEvent.id))
        .where(*_scans_where(user, p, notice), ScanEvent.screen_code.is_not(None))
        .group_by(ScanEvent.screen_code)
    ).all())
    rows = []
    for screen in screens_in_scope(user):
        count, seconds, notices, days = played.get(screen.id, (0, 0, 0, 0))
        row = ScreenRow(screen, int(count), int(seconds), notices, days,
                        int(scans.get(screen.code, 0)))
        if notice is None or row.plays or row.scans:
            rows.append(row)
    return rows


def by_day(user: User, p: Period, notice: Notice | None = None) -> list[DayRow]:
    """Plays and seconds per day of the period, days without plays included (as 0)."""
    sums = {
        day: (int(count), int(seconds))
        for day, count, seconds in db.session.execute(
            select(PlayStat.day, func.sum(PlayStat.plays), func.sum(PlayStat.seconds))
            .where(*_plays_where(user, p, notice))
            .group_by(PlayStat.day)
        ).all()
    }
    return [DayRow(day, *sums.get(day, (0, 0))) for day in p.days]


def proof_rows(user: User, p: Period, notice: Notice | None = None) -> Iterator[ProofRow]:
    """Proof of play, one row per notice × screen × day, by day, notice and screen."""
    screens = {s.id: s for s in screens_in_scope(user)}
    described: dict[int, tuple[str, str, str, str]] = {}
    notices: dict[int, tuple[str, str]] = {}
    stmt = (
        select(PlayStat.notice_id, PlayStat.screen_id, PlayStat.day, PlayStat.plays,
               PlayStat.seconds)
        .where(*_plays_where(user, p, notice))
        .order_by(PlayStat.day, PlayStat.notice_id, PlayStat.screen_id)
    )
    for notice_id, screen_id, day, plays, seconds in db.session.execute(
        stmt.execution_options(yield_per=CSV_CHUNK)
    ):
        if notice_id not in notices:
            found = db.session.get(Notice, notice_id)
            notices[notice_id] = (found.code, title_of(found)) if found else ("", "")
        if screen_id not in described:
            s = screens[screen_id]
            described[screen_id] = (s.code, s.name, s.region.name, s.region.full_name)
        yield ProofRow(*notices[notice_id], *described[screen_id], day, plays, seconds)


def notice_report(user: User, notice: Notice, p: Period) -> NoticeReport:
    """A notice's own proof of play (the caller has checked `can_see_notice`)."""
    return NoticeReport(
        notice=notice,
        period=p,
        totals=totals(user, p, notice),
        days=by_day(user, p, notice),
        screens=by_screen(user, p, notice),
        proof=list(proof_rows(user, p, notice)),
    )


# --- CSV ---------------------------------------------------------------------------------


def safe_cell(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets
    a leading apostrophe, so it shows as text (CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_header() -> list[str]:
    return [_("Notice code"), _("Notice title"), _("Screen code"), _("Screen name"),
            _("Village"), _("Region"), _("Day"), _("Plays"), _("Seconds")]


def csv_chunks(user: User, p: Period, notice: Notice | None = None) -> Iterator[str]:
    """The proof-of-play CSV in pieces: UTF-8 with a byte-order mark first (Excel opens it
    as UTF-8 only then), CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out)
    out.write("\ufeff")
    writer.writerow([safe_cell(h) for h in csv_header()])
    for i, row in enumerate(proof_rows(user, p, notice), start=1):
        writer.writerow([safe_cell(v) for v in (
            row.notice_code, row.notice_title, row.screen_code, row.screen_name, row.village,
            row.region, row.day.isoformat(), row.plays, row.seconds)])
        if i % CSV_CHUNK == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def csv_bytes(user: User, p: Period, notice: Notice | None = None) -> bytes:
    return "".join(csv_chunks(user, p, notice)).encode("utf-8")


def rows_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """Any small table as the same kind of CSV (BOM, CRLF, formula guard)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue().encode("utf-8")
