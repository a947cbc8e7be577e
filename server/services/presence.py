"""When screens are on: a row per screen and local day it was seen online (开机), for the boot
rate; the announcement of every connect and disconnect, for the live dashboard; and what the
dashboard reads: counts, the boot rate per day and group, screens silent for long, and what each
screen shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import selectinload

from player import protocol
from server import signals
from server.extensions import db
from server.models import Alert, Notice, Region, Revision, Role, Screen, ScreenDay, User
from server.models.base import utcnow
from server.services import revisions
from server.services import screens as screen_service
from server.services.errors import PermissionDenied

_UTC = ZoneInfo("UTC")


def county_zone() -> ZoneInfo:
    """The county's time zone (CUNPING_TIMEZONE)."""
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


def local_day(moment: datetime, zone: ZoneInfo | None = None) -> date:
    """The county's calendar day of a naive-UTC moment (CUNPING_TIMEZONE, or `zone` when the
    caller already holds it: a batch of thousands asks once)."""
    return moment.replace(tzinfo=_UTC).astimezone(zone or county_zone()).date()


def seen(screen: Screen, now: datetime | None = None, *, commit: bool = True) -> None:
    """Record that `screen` is online now (connect, heartbeat)."""
    seen_many([(screen.id, now or utcnow())])
    if commit:
        db.session.commit()


_SEEN_PG = text("""
    INSERT INTO screen_days (screen_id, day, first_seen_at, last_seen_at)
    SELECT * FROM unnest(CAST(:screen_id AS integer[]), CAST(:day AS date[]),
                         CAST(:first_seen_at AS timestamp[]), CAST(:last_seen_at AS timestamp[]))
    ON CONFLICT (screen_id, day) DO UPDATE SET last_seen_at = excluded.last_seen_at
""")


def seen_many(sightings: Iterable[tuple[int, datetime]]) -> None:
    """Record screens seen online at these moments: one upsert of their day rows (no commit)."""
    zone = county_zone()
    rows = [{"screen_id": screen_id, "day": local_day(when, zone), "first_seen_at": when,
             "last_seen_at": when} for screen_id, when in sightings]
    if not rows:
        return
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":  # one statement for a batch of thousands, not one per row
        # (a row at most once per statement: the same screen and day twice is one sighting)
        merged: dict[tuple[int, date], dict[str, Any]] = {}
        for row in rows:
            held = merged.setdefault((row["screen_id"], row["day"]), row)
            held["first_seen_at"] = min(held["first_seen_at"], row["first_seen_at"])
            held["last_seen_at"] = max(held["last_seen_at"], row["last_seen_at"])
        rows = [merged[key] for key in sorted(merged)]
        db.session.execute(_SEEN_PG, {key: [row[key] for row in rows] for key in rows[0]})
        return
    stmt = sqlite.insert(ScreenDay)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ScreenDay.screen_id, ScreenDay.day],
        set_={"last_seen_at": stmt.excluded.last_seen_at},
    )
    db.session.execute(stmt, rows)


def announce(screen: Screen, *, online: bool) -> None:
    """Tell the live dashboard (signals.screen_presence) that `screen` came or went."""
    announce_ids(screen.id, screen.code, revisions.chain_ids(screen.region), online=online)


def announce_ids(screen_id: int, code: str, chain: list[int], *, online: bool) -> None:
    """`announce` from what the caller already holds (no database work)."""
    signals.screen_presence.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        screen_id=screen_id,
        code=code,
        online=online,
        region_ids=chain,
    )


# --- the dashboard: who sees which screens -------------------------------------------------

#: roles that see the dashboard of their subtrees (an alert officer wants to know which
#: terminals are on, too); managing a screen (a screenshot) still needs editor or admin
DASHBOARD_ROLES = (Role.ADMIN, Role.EDITOR, Role.ALERT)
BOOT_RATE_DAYS = 30


def dashboard_roots(actor: User) -> list[Region]:
    """The tops of the subtrees whose screens `actor` sees on the dashboard (none nested)."""
    if not actor.is_active:
        return []
    roots = [g.region for g in actor.grants if g.role in DASHBOARD_ROLES]
    tops = [r for r in roots if not any(o.id != r.id and o.contains(r) for o in roots)]
    return sorted({r.id: r for r in tops}.values(), key=lambda r: r.path)


def require_dashboard(actor: User) -> list[Region]:
    """`dashboard_roots`, or PermissionDenied for a user without any."""
    roots = dashboard_roots(actor)
    if not roots:
        raise PermissionDenied(_("The dashboard is for editors, administrators and alert "
                                 "officers of a region."))
    return roots


def _under(roots: Sequence[Region]) -> Any:
    return or_(*[Region.path.startswith(r.path) for r in roots])


def screens_under(roots: Sequence[Region], *, revoked: bool = False) -> list[Screen]:
    """Screens below `roots` (all of them for None roots is `all_screens`), by region and name;
    revoked ones only when asked (the boot rate counts them on the days they still existed)."""
    if not roots:
        return []
    stmt = select(Screen).join(Region, Region.id == Screen.region_id).where(_under(roots))
    if not revoked:
        stmt = stmt.where(Screen.revoked_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Region.path, Screen.name, Screen.id)))


def all_screens() -> list[Screen]:
    """Every screen in use (for the digest, which runs as the system)."""
    stmt = select(Screen).join(Region).where(Screen.revoked_at.is_(None))
    return list(db.session.scalars(stmt.order_by(Region.path, Screen.name, Screen.id)))


@dataclass(frozen=True)
class Counts:
    """Screens in use below the user's regions, online now and not."""

    online: int
    total: int

    @property
    def offline(self) -> int:
        return self.total - self.online

    def as_dict(self) -> dict[str, int]:
        return {"online": self.online, "offline": self.offline, "total": self.total}


def counts(screens: Iterable[Screen], now: datetime | None = None) -> Counts:
    now = now or utcnow()
    listed = [s for s in screens if s.revoked_at is None]
    return Counts(online=sum(1 for s in listed if screen_service.is_online(s, now)),
                  total=len(listed))


# --- screens that went silent --------------------------------------------------------------


def sweep_silent(now: datetime | None = None) -> list[int]:
    """Screens the database calls online but not heard from for protocol.ONLINE_GRACE_SECONDS
    (their server process died, a cable was pulled before the socket noticed) are marked
    offline and announced. Safe from several processes: each screen flips, and is announced,
    once. Returns the ids flipped; commits."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=protocol.ONLINE_GRACE_SECONDS)
    silent = or_(Screen.last_seen_at.is_(None), Screen.last_seen_at < cutoff)
    candidates = db.session.scalars(
        select(Screen.id).where(Screen.online.is_(True), silent)
    ).all()
    flipped: list[int] = []
    for screen_id in candidates:
        result = db.session.execute(
            update(Screen)
            .where(Screen.id == screen_id, Screen.online.is_(True), silent)
            .values(online=False, connected_sid=None)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            flipped.append(screen_id)
    db.session.commit()
    for screen_id in flipped:
        screen = db.session.get(Screen, screen_id)
        if screen is not None:
            db.session.refresh(screen)
            announce(screen, online=False)
    return flipped


# --- boot rate (开机率) ---------------------------------------------------------------------


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The naive-UTC moments the county's local `day` begins and ends."""
    tz = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz)
    utc = ZoneInfo("UTC")
    return (start.astimezone(utc).replace(tzinfo=None), end.astimezone(utc).replace(tzinfo=None))


def existed(screen: Screen, day: date) -> bool:
    """The screen was in use on `day`: created before the day ended, and not revoked before it
    began."""
    start, end = day_bounds(day)
    return screen.created_at < end and (screen.revoked_at is None or screen.revoked_at >= start)


@dataclass(frozen=True)
class Rate:
    """Screens seen online on a day among those in use that day."""

    seen: int
    existing: int

    @property
    def rate(self) -> float | None:
        return self.seen / self.existing if self.existing else None

    @property
    def percent(self) -> int | None:
        rate = self.rate
        return None if rate is None else round(rate * 100)


@dataclass
class BootRate:
    """The boot rate of the last `days`, per day, for the whole scope and per group (the towns
    of a county user, the villages of a town user)."""

    days: list[date]
    groups: list[Region]
    cells: dict[tuple[int, date], Rate] = field(default_factory=dict)
    totals: dict[date, Rate] = field(default_factory=dict)

    def cell(self, group: Region, day: date) -> Rate:
        return self.cells.get((group.id, day), Rate(0, 0))

    def group_total(self, group: Region) -> Rate:
        """The group over the whole period (screen-days seen / screen-days in use)."""
        rates = [self.cell(group, d) for d in self.days]
        return Rate(sum(r.seen for r in rates), sum(r.existing for r in rates))

    @property
    def overall(self) -> Rate:
        rates = [self.totals[d] for d in self.days]
        return Rate(sum(r.seen for r in rates), sum(r.existing for r in rates))


def _group_of(path: str, depth: int) -> int:
    """The id of the region at `depth` on the way down to the region with `path` (the region
    itself when it is shallower)."""
    chain = [int(x) for x in path.strip("/").split("/") if x]
    return chain[min(depth, len(chain) - 1)]


# Screens seen on a finished day, per region (the screens' own region, not the subtree):
# ScreenDay rows of a day that has ended never change, so each process counts them once per
# database instead of on every dashboard view (30 days × 10,000 screens is 300,000 rows).
# Today is always counted afresh, and yesterday until SETTLE_MINUTES past midnight (a
# heartbeat at 23:59 may commit just after). A screen moved to another village keeps its
# finished days where they were counted until the process restarts.
_SEEN_CACHE: dict[tuple[str, date], dict[int, int]] = {}
_SEEN_CACHE_DAYS = 62  # finished days kept per database
SETTLE_MINUTES = 10


def _seen_per_region(days: Sequence[date], roots: Sequence[Region]) -> dict[date, dict[int, int]]:
    """Per day: region id → screens of that region seen online that day."""
    # The first day not yet settled: yesterday until SETTLE_MINUTES past midnight, then today.
    settled_before = local_day(utcnow() - timedelta(minutes=SETTLE_MINUTES))
    database = db.engine.url.render_as_string(hide_password=True)
    out: dict[date, dict[int, int]] = {}
    missing = []
    for day in days:
        cached = _SEEN_CACHE.get((database, day)) if day < settled_before else None
        if cached is None:
            missing.append(day)
        else:
            out[day] = cached
    if not missing:
        return out
    settled = [d for d in missing if d < settled_before]
    stmt = (
        select(Screen.region_id, ScreenDay.day, func.count())
        .join(Screen, Screen.id == ScreenDay.screen_id)
        .where(ScreenDay.day >= min(missing), ScreenDay.day <= max(missing))
        .group_by(Screen.region_id, ScreenDay.day)
    )
    if not settled:  # only the unsettled day(s): this user's screens are enough
        stmt = stmt.join(Region, Region.id == Screen.region_id).where(_under(roots))
    for day in missing:
        out[day] = {}
    for region_id, day, n in db.session.execute(stmt):
        if day in out:
            out[day][region_id] = int(n)
    for day in settled:
        _SEEN_CACHE[(database, day)] = out[day]
    if len(_SEEN_CACHE) > _SEEN_CACHE_DAYS * 4:
        for key in sorted(_SEEN_CACHE, key=lambda k: k[1])[: len(_SEEN_CACHE) // 2]:
            _SEEN_CACHE.pop(key, None)
    return out


def boot_rate(roots: Sequence[Region], *, days: int = BOOT_RATE_DAYS,
              today: date | None = None) -> BootRate:
    """Per day (the last `days` local days up to `today`) and per group below `roots`: screens
    seen online that day (ScreenDay) / screens in use that day (`existed`).

    Counted in SQL per region and folded into groups here: a handful of statements and a few
    thousand rows at most, however many screens and days. Seen screens are counted per group
    and day, capped at the screens in use there that day."""
    today = today or local_day(utcnow())
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    if not roots:
        return BootRate(days=span, groups=[], totals={d: Rate(0, 0) for d in span})
    depth = min(r.depth for r in roots) + 1
    bounds = {d: day_bounds(d) for d in span}
    first_start, last_end = bounds[span[0]][0], bounds[span[-1]][1]
    paths = dict(db.session.execute(
        select(Region.id, Region.path).where(_under(roots))).all())
    group_of = {rid: _group_of(path, depth) for rid, path in paths.items()}
    in_scope = Screen.region_id.in_(select(Region.id).where(_under(roots)))
    # Screens in use on every day of the span, counted per region; the few added or revoked
    # during the span one by one.
    stable = dict(db.session.execute(
        select(Screen.region_id, func.count())
        .where(in_scope, Screen.created_at < first_start,
               or_(Screen.revoked_at.is_(None), Screen.revoked_at >= last_end))
        .group_by(Screen.region_id)).all())
    changing = db.session.execute(
        select(Screen.region_id, Screen.created_at, Screen.revoked_at)
        .where(in_scope, Screen.created_at < last_end,
               or_(Screen.revoked_at.is_(None), Screen.revoked_at >= first_start),
               or_(Screen.created_at >= first_start, Screen.revoked_at < last_end))
    ).all()
    used_groups = {group_of[r] for r in stable} | {group_of[r] for r, _c, _v in changing}
    seen: dict[date, dict[int, int]] = {}
    for day, per_region in _seen_per_region(span, roots).items():
        seen[day] = defaultdict(int)
        for region_id, n in per_region.items():
            group = group_of.get(region_id)
            if group is not None and n:
                seen[day][group] += n
        used_groups.update(seen[day])
    groups = {g.id: g for g in db.session.scalars(
        select(Region).where(Region.id.in_(used_groups)))} if used_groups else {}
    result = BootRate(days=span, groups=sorted(groups.values(), key=lambda r: r.path))
    stable_n: dict[int, int] = defaultdict(int)
    for region_id, n in stable.items():
        stable_n[group_of[region_id]] += n
    for day in span:
        start, end = bounds[day]
        existing_n = defaultdict(int, stable_n)
        for region_id, created_at, revoked_at in changing:
            if created_at < end and (revoked_at is None or revoked_at >= start):
                existing_n[group_of[region_id]] += 1
        # A screen seen on a day it was not in use yet (its days back-filled, a clock set
        # wrong) does not count: a rate never passes 100 %.
        seen_n = {g: min(seen[day][g], existing_n[g]) for g in groups}
        for group in groups:
            result.cells[(group, day)] = Rate(seen_n[group], existing_n[group])
        result.totals[day] = Rate(sum(seen_n[g] for g in groups),
                                  sum(existing_n[g] for g in groups))
    return result


# --- screens offline for long, and what each shows -----------------------------------------


@dataclass(frozen=True)
class Showing:
    """What a screen reported on screen at its last heartbeat."""

    kind: str  # "alert" | "notice" | "standby"
    code: str | None = None
    title: str | None = None
    notice: Notice | None = None
    alert: Alert | None = None


def showing(screens: Sequence[Screen]) -> dict[int, Showing]:
    """Per screen id: the alert in force on it, else the notice it shows, else standby (looked
    up in two queries, not one per screen)."""
    notice_codes = {s.state.get("showing") for s in screens if isinstance(s.state, dict)}
    alert_codes = {s.state.get("alert") for s in screens if isinstance(s.state, dict)}
    notice_codes = {c for c in notice_codes if isinstance(c, str)}
    alert_codes = {c for c in alert_codes if isinstance(c, str)}
    notices_by = {n.code: n for n in db.session.scalars(
        select(Notice).where(Notice.code.in_(notice_codes)).options(
            selectinload(Notice.pending_revision).lazyload(Revision.targets),
            selectinload(Notice.live_revision).lazyload(Revision.targets),
        ))} if notice_codes else {}
    alerts_by = {a.code: a for a in db.session.scalars(
        select(Alert).where(Alert.code.in_(alert_codes)))} if alert_codes else {}
    out: dict[int, Showing] = {}
    for screen in screens:
        state = screen.state if isinstance(screen.state, dict) else {}
        alert_code, notice_code = state.get("alert"), state.get("showing")
        if isinstance(alert_code, str):
            alert = alerts_by.get(alert_code)
            out[screen.id] = Showing("alert", alert_code, alert.title if alert else None,
                                     alert=alert)
        elif isinstance(notice_code, str):
            notice = notices_by.get(notice_code)
            title = notice.current.title if notice is not None else None
            out[screen.id] = Showing("notice", notice_code, title, notice=notice)
        else:
            out[screen.id] = Showing("standby")
    return out


@dataclass(frozen=True)
class OfflineScreen:
    """A screen offline longer than OFFLINE_ALERT_MINUTES."""

    screen: Screen
    since: datetime  # last heard from; when it was added if it never connected
    never: bool  # never connected at all
    showing: Showing  # what it showed last

    def minutes(self, now: datetime) -> int:
        return int((now - self.since).total_seconds() // 60)


def offline_threshold() -> timedelta:
    return timedelta(minutes=int(current_app.config["OFFLINE_ALERT_MINUTES"]))


def offline_for_long(screens: Sequence[Screen], now: datetime | None = None) -> list[OfflineScreen]:
    """Screens in use offline longer than OFFLINE_ALERT_MINUTES, longest silent first."""
    now = now or utcnow()
    limit = now - offline_threshold()
    found = []
    for screen in screens:
        if screen.revoked_at is not None or screen_service.is_online(screen, now):
            continue
        since = screen.last_seen_at or screen.created_at
        if since <= limit:
            found.append(screen)
    shows = showing(found)
    rows = [OfflineScreen(s, s.last_seen_at or s.created_at, s.last_seen_at is None,
                          shows[s.id]) for s in found]
    return sorted(rows, key=lambda r: (r.since, r.screen.region.path, r.screen.name))
