"""What to show and in which order: pure functions of the notices and the clock.

Like Anthias' generate_asset_list, `build_playlist` returns the playlist and the moment it next
changes by itself (a notice expires or a scheduled one starts), so the loop can sleep until then.

Timing rule: each PAGE of a notice stays on screen for the notice's duration_s. The renderer
sizes a page for large type, so a page is what an elderly viewer reads in that time; splitting
the duration across pages would flash long notices past unread.

Rotation rule: notices play in playlist order (pinned first, then newest first), every page in
turn, then wrap around. A notice that is new or has a new version jumps the queue: it is shown
next, at once, so an editor sees the change on the screen within a second. A notice that
disappears (withdrawn, expired) while on screen is replaced at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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


class Rotation:
    """Which page of which notice comes next. No clock inside: the loop asks `next()` when a
    slide's time is up, or at once when `update()` says the screen must change."""

    def __init__(self) -> None:
        self.playlist: list[dict[str, Any]] = []
        self.current: Slide | None = None
        self._urgent: list[str] = []  # codes to show next, in order
        self._last_index = -1  # where the current notice was in the playlist

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
        while self._urgent and notice is None:
            i = self._index(self._urgent.pop(0))
            if i >= 0:
                notice, self._last_index = self.playlist[i], i
        if notice is None and self.current is not None:
            i = self._index(self.current.code)
            if i >= 0 and self.playlist[i]["version"] == self.current.version \
                    and self.current.page + 1 < pages_of(self.playlist[i]):
                notice, page, self._last_index = self.playlist[i], self.current.page + 1, i
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
        page = min(page, pages - 1)
        self.current = Slide(notice["code"], notice["version"], page, pages,
                             float(notice["duration_s"]))
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
