"""What to show and in which order: pure functions of the notices and the clock.

Like Anthias' generate_asset_list, `build_playlist` returns the playlist and the moment it next
changes by itself (a notice expires or a scheduled one starts), so the loop can sleep until then.

Timing rule: each PAGE of a notice stays on screen for the notice's duration_s. The renderer
sizes a page for large type, so a page is what an elderly viewer reads in that time; splitting
the duration across pages would flash long notices past unread.

Rotation rule: notices play in playlist order (pinned first, then newest first), every page in
turn, then wrap around.

Time budget: a notice never holds the screen for long. Each turn of a notice shows at most
budget_s // duration_s pages (NoticePayload "budget_s", 120 s when absent; at least one page).
A notice with more pages than that shows that many, its last page saying how many are left
(Slide.more: "还有 27 页 · 扫码看全文", the QR leading to the whole text), and its next turn
goes on from the next page, wrapping to the first after the last; the rotation moves on to the
other notices in between. A 4,800-character notice on a portrait screen (about 32 pages) at
20 s a page and 120 s of budget shows 6 pages per turn.

A notice that is new or has a new version jumps the queue: it is shown next, at once, so an
editor sees the change on the screen within a second. A notice that disappears (withdrawn,
expired) while on screen is replaced at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from player.protocol import DEFAULT_BUDGET_S


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive means UTC); None if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def targets_screen(notice: dict[str, Any], region_chain: Iterable[int] | None) -> bool:
    """A notice is for this screen when one of its targets is in the screen's region chain
    (its village, town and county). An unknown chain trusts the server's selection."""
    if region_chain is None:
        return True
    return bool(set(notice.get("targets") or ()) & set(region_chain))


def _sort_key(notice: dict[str, Any]) -> tuple[int, float, str]:
    published = parse_time(notice.get("published_at"))
    stamp = published.timestamp() if published else 0.0
    return (0 if notice.get("pinned") else 1, -stamp, str(notice.get("code")))


def build_playlist(notices: Iterable[dict[str, Any]], now: datetime,
                   region_chain: Iterable[int] | None) -> tuple[list[dict[str, Any]],
                                                                datetime | None]:
    """The notices to play now, in order, and when this answer next changes by itself.

    Drops notices not aimed at the screen, expired ones (expire_at <= now: a player offline
    for weeks must not show expired notices forever) and ones not yet published. `now` is the
    server's time as best known (the box's clock plus the offset WELCOME or ALERTS gave): a
    box whose clock runs behind would otherwise hold back notices published meanwhile, and
    one running ahead would drop notices before they expire."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    chain = list(region_chain) if region_chain is not None else None
    playlist = []
    deadline: datetime | None = None
    for notice in notices:
        if not targets_screen(notice, chain):
            continue
        expire_at = parse_time(notice.get("expire_at"))
        published_at = parse_time(notice.get("published_at"))
        if expire_at is not None and expire_at <= now:
            continue
        if published_at is not None and published_at > now:
            deadline = published_at if deadline is None else min(deadline, published_at)
            continue
        if expire_at is not None:
            deadline = expire_at if deadline is None else min(deadline, expire_at)
        playlist.append(notice)
    playlist.sort(key=_sort_key)
    return playlist, deadline


@dataclass(frozen=True)
class Slide:
    code: str
    version: int
    page: int  # 0-based
    pages: int
    duration_s: float
    more: int = 0  # the last page of a turn cut short by the budget: pages not shown this turn


def pages_per_turn(notice: dict[str, Any]) -> int:
    """How many pages of `notice` one turn shows: its budget over its duration (at least 1)."""
    budget = notice.get("budget_s")
    budget = budget if isinstance(budget, int) and not isinstance(budget, bool) \
        else DEFAULT_BUDGET_S
    duration = max(1, int(notice.get("duration_s") or 1))
    return max(1, budget // duration)


class Rotation:
    """Which page of which notice comes next. No clock inside: the loop asks `next()` when a
    slide's time is up, or at once when `update()` says the screen must change."""

    def __init__(self) -> None:
        self.playlist: list[dict[str, Any]] = []
        self.current: Slide | None = None
        self._urgent: list[str] = []  # codes to show next, in order
        self._last_index = -1  # where the current notice was in the playlist
        self._resume: dict[tuple[str, int], int] = {}  # (code, version) -> next turn's page
        self._turn = 0  # pages of the current notice shown in this turn

    def _index(self, code: str) -> int:
        for i, notice in enumerate(self.playlist):
            if notice["code"] == code:
                return i
        return -1

    def update(self, playlist: list[dict[str, Any]]) -> bool:
        """Take a new playlist; returns True when the current slide must be replaced now (it
        was removed or changed, or a new or changed notice waits to be shown)."""
        old = {n["code"]: n["version"] for n in self.playlist}
        self.playlist = list(playlist)
        fresh = [n["code"] for n in self.playlist if old.get(n["code"]) != n["version"]]
        if old or self.current is not None:
            present = {n["code"] for n in self.playlist}
            self._urgent = [c for c in self._urgent if c in present]
            self._urgent += [c for c in fresh if c not in self._urgent]
        if self.current is not None:
            i = self._index(self.current.code)
            if i >= 0:
                self._last_index = i
                if self.playlist[i]["version"] != self.current.version:
                    return True
            else:
                return True
        elif self.playlist:
            return True
        return bool(self._urgent)

    def next(self, pages_of: Callable[[dict[str, Any]], int]) -> Slide | None:
        """The slide to show now; None when the playlist is empty (standby)."""
        if not self.playlist:
            self.current = None
            self._urgent = []
            self._last_index = -1
            return None
        notice = None
        page = 0
        turn_goes_on = False
        while self._urgent and notice is None:
            i = self._index(self._urgent.pop(0))
            if i >= 0:
                notice, self._last_index = self.playlist[i], i
                self._resume.pop((notice["code"], notice["version"]), None)  # new: from page 1
        if notice is None and self.current is not None:
            i = self._index(self.current.code)
            same = i >= 0 and self.playlist[i]["version"] == self.current.version
            pages = pages_of(self.playlist[i]) if same else 0
            per_turn = pages_per_turn(self.playlist[i]) if same else 0
            if same and pages <= per_turn and self.current.page + 1 < pages:
                notice, page, self._last_index = self.playlist[i], self.current.page + 1, i
                turn_goes_on = True
            elif same and pages > per_turn and self._turn < per_turn:
                # A long notice within its budget: the next page, wrapping after the last.
                notice, self._last_index = self.playlist[i], i
                page = (self.current.page + 1) % pages
                turn_goes_on = True
            else:
                # The next notice in order; when the current one was removed, its successor
                # has moved into its place.
                j = i + 1 if i >= 0 else max(self._last_index, 0)
                self._last_index = j % len(self.playlist)
                notice = self.playlist[self._last_index]
        if notice is None:
            self._last_index = 0
            notice = self.playlist[0]
        pages = max(1, pages_of(notice))
        per_turn = pages_per_turn(notice)
        key = (notice["code"], notice["version"])
        if turn_goes_on:
            self._turn += 1
        else:
            self._turn = 1
            page = self._resume.get(key, 0) if pages > per_turn else 0
        page = min(page, pages - 1)
        more = 0
        if pages > per_turn and self._turn >= per_turn:
            more = pages - per_turn  # the turn ends here: say what is left
            self._resume[key] = (page + 1) % pages
        live = {(n["code"], n["version"]) for n in self.playlist}
        self._resume = {k: v for k, v in self._resume.items() if k in live}
        self.current = Slide(notice["code"], notice["version"], page, pages,
                             float(notice["duration_s"]), more)
        return self.current


def _alert_rank(alert: dict[str, Any]) -> tuple[int, float, str]:
    issued = parse_time(alert.get("issued_at")) or parse_time(alert.get("starts_at"))
    return (int(alert.get("level") or 9), issued.timestamp() if issued else 0.0,
            str(alert.get("code")))


def alerts_in_force(alerts: Iterable[dict[str, Any]], now: datetime
                    ) -> tuple[list[dict[str, Any]], datetime | None]:
    """The alerts to show now (starts_at <= now < expires_at), level I first, then the
    earliest issued, and when this answer next changes by itself (a start or an expiry).
    `now` is the server's time as best known (the box's clock plus the offset ALERTS gave)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    shown = []
    deadline: datetime | None = None
    for alert in alerts:
        starts, expires = parse_time(alert.get("starts_at")), parse_time(alert.get("expires_at"))
        if expires is not None and expires <= now:
            continue
        if starts is not None and starts > now:
            deadline = starts if deadline is None else min(deadline, starts)
            continue
        if expires is not None:
            deadline = expires if deadline is None else min(deadline, expires)
        shown.append(alert)
    shown.sort(key=_alert_rank)
    return shown, deadline
