"""Playlist selection and rotation: pure functions of notices, clock and region chain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from player.schedule import Rotation, build_playlist, parse_time
from tests.player.conftest import HOUR, make_notice, utc

NOW = utc(2026, 11, 22, 10, 0)
CHAIN = [1, 2, 3]  # county, town, village


def codes(notices: list[dict[str, Any]]) -> list[str]:
    return [n["code"] for n in notices]


def pages_of(notice: dict[str, Any]) -> int:
    return notice.get("_pages", 1)


def test_parse_time() -> None:
    assert parse_time("2026-11-22T10:00:00Z") == NOW
    assert parse_time("2026-11-22T18:00:00+08:00") == NOW
    assert parse_time("2026-11-22T10:00:00") == NOW  # naive means UTC
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


def test_only_notices_for_this_screen() -> None:
    county = make_notice("CTY", targets=[1])
    village = make_notice("VIL", targets=[3])
    other = make_notice("OTH", targets=[4, 9])
    playlist, _ = build_playlist([county, village, other], NOW, CHAIN)
    assert set(codes(playlist)) == {"CTY", "VIL"}
    # an unknown chain trusts the server's selection
    playlist, _ = build_playlist([county, other], NOW, None)
    assert set(codes(playlist)) == {"CTY", "OTH"}


def test_pinned_first_then_newest() -> None:
    old = make_notice("OLD", published_at=NOW - 48 * HOUR)
    new = make_notice("NEW", published_at=NOW - HOUR)
    mid = make_notice("MID", published_at=NOW - 24 * HOUR)
    pinned_old = make_notice("PIN", published_at=NOW - 100 * HOUR, pinned=True)
    playlist, _ = build_playlist([old, new, mid, pinned_old], NOW, CHAIN)
    assert codes(playlist) == ["PIN", "NEW", "MID", "OLD"]


def test_expired_and_future_notices_are_dropped_and_set_the_deadline() -> None:
    expired = make_notice("EXP", expire_at=NOW - timedelta(seconds=1))
    at_now = make_notice("ATN", expire_at=NOW)  # expire_at <= now: gone
    soon = make_notice("SON", expire_at=NOW + 2 * HOUR)
    later = make_notice("LAT", expire_at=NOW + 5 * HOUR)
    future = make_notice("FUT", published_at=NOW + HOUR)
    forever = make_notice("FOR")
    playlist, deadline = build_playlist([expired, at_now, soon, later, future, forever], NOW,
                                        CHAIN)
    assert set(codes(playlist)) == {"SON", "LAT", "FOR"}
    assert deadline == NOW + HOUR  # the future one starts first
    playlist, deadline = build_playlist([soon, forever], NOW + 2 * HOUR, CHAIN)
    assert codes(playlist) == ["FOR"] and deadline is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        build_playlist([], NOW.replace(tzinfo=None), CHAIN)


def playlist_of(*notices: dict[str, Any]) -> list[dict[str, Any]]:
    return list(notices)


def test_rotation_pages_then_next_notice_and_wrap() -> None:
    a = make_notice("A", pages=2, duration_s=15)
    b = make_notice("B", pages=1, duration_s=30)
    rotation = Rotation()
    assert rotation.update([a, b]) is True  # something to show where nothing was
    shown = [(s.code, s.page, s.duration_s)
             for s in (rotation.next(pages_of) for _ in range(5)) if s is not None]
    # each page stays for the notice's duration
    assert shown == [("A", 0, 15), ("A", 1, 15), ("B", 0, 30), ("A", 0, 15), ("A", 1, 15)]


def test_empty_playlist_is_standby() -> None:
    rotation = Rotation()
    assert rotation.update([]) is False
    assert rotation.next(pages_of) is None


def test_new_notice_is_shown_next_at_once() -> None:
    a, b = make_notice("A", pages=3), make_notice("B")
    rotation = Rotation()
    rotation.update([a, b])
    assert rotation.next(pages_of).code == "A"  # type: ignore[union-attr]
    fresh = make_notice("NEW")
    assert rotation.update([fresh, a, b]) is True  # interrupt now
    assert rotation.next(pages_of).code == "NEW"  # type: ignore[union-attr]
    # then the rotation goes on in order after it
    assert [rotation.next(pages_of).code for _ in range(3)] == ["A", "A", "A"]  # type: ignore[union-attr]


def test_changed_notice_is_shown_next_from_its_first_page() -> None:
    a, b = make_notice("A", pages=2), make_notice("B", pages=2)
    rotation = Rotation()
    rotation.update([a, b])
    rotation.next(pages_of)  # A p0
    b2 = make_notice("B", version=2, pages=2)
    assert rotation.update([a, b2]) is True
    slide = rotation.next(pages_of)
    assert (slide.code, slide.version, slide.page) == ("B", 2, 0)  # type: ignore[union-attr]


def test_change_of_the_notice_on_screen_restarts_it() -> None:
    a = make_notice("A", pages=3)
    rotation = Rotation()
    rotation.update([a])
    rotation.next(pages_of)
    rotation.next(pages_of)  # A p1
    a2 = make_notice("A", version=2, pages=3)
    assert rotation.update([a2]) is True
    slide = rotation.next(pages_of)
    assert (slide.version, slide.page) == (2, 0)  # type: ignore[union-attr]


def test_removed_notice_on_screen_is_replaced_at_once_by_its_successor() -> None:
    a, b, c = make_notice("A"), make_notice("B"), make_notice("C")
    rotation = Rotation()
    rotation.update([a, b, c])
    rotation.next(pages_of)
    assert rotation.next(pages_of).code == "B"  # type: ignore[union-attr]
    assert rotation.update([a, c]) is True
    assert rotation.next(pages_of).code == "C"  # type: ignore[union-attr]
    assert rotation.update([]) is True
    assert rotation.next(pages_of) is None


def test_unrelated_removal_does_not_interrupt() -> None:
    a, b, c = make_notice("A"), make_notice("B"), make_notice("C")
    rotation = Rotation()
    rotation.update([a, b, c])
    rotation.next(pages_of)  # A
    assert rotation.update([a, b]) is False
    assert rotation.update([a, b]) is False  # same playlist again: nothing to do
    assert rotation.next(pages_of).code == "B"  # type: ignore[union-attr]


def test_notice_whose_page_count_shrinks() -> None:
    a = make_notice("A", pages=3)
    rotation = Rotation()
    rotation.update([a])
    rotation.next(pages_of)
    rotation.next(pages_of)
    rotation.next(pages_of)  # page 2
    slide = rotation.next(lambda n: 1)
    assert (slide.code, slide.page) == ("A", 0)  # type: ignore[union-attr]


# ---- the time budget: a notice never holds the screen for long ----------------------------


def turn_of(rotation: Rotation, n: int) -> list[tuple[str, int, int]]:
    return [(s.code, s.page, s.more) for s in (rotation.next(pages_of) for _ in range(n))
            if s is not None]


def test_a_long_notice_shows_its_budget_then_moves_on_and_continues_next_turn() -> None:
    # 32 pages at 20 s a page, 120 s of budget: 6 pages per turn.
    long = make_notice("LONG", pages=32, duration_s=20, pinned=True)
    long["budget_s"] = 120
    short = make_notice("SHORT", pages=2, duration_s=20)
    rotation = Rotation()
    rotation.update([long, short])
    first = turn_of(rotation, 8)
    assert first == [("LONG", p, 0) for p in range(5)] + [("LONG", 5, 26)] + [
        ("SHORT", 0, 0), ("SHORT", 1, 0)]
    # The next turn goes on from page 7 (index 6), never from the first page again.
    second = turn_of(rotation, 8)
    assert second[:6] == [("LONG", p, 0) for p in range(6, 11)] + [("LONG", 11, 26)]
    assert [c for c, _p, _m in second[6:]] == ["SHORT", "SHORT"]
    # Turns wrap: after the last page (31) comes the first.
    for _ in range(3):
        turn_of(rotation, 8)
    fifth = turn_of(rotation, 6)
    assert [p for _c, p, _m in fifth] == [30, 31, 0, 1, 2, 3]
    assert fifth[-1][2] == 26
    # No page of the notice is on screen longer than its budget per turn.
    assert all(sum(1 for c, _p, _m in turn if c == "LONG") * 20 <= 120
               for turn in (first, second))


def test_the_budget_defaults_to_120_s_and_a_short_notice_is_unchanged() -> None:
    long = make_notice("LONG", pages=12, duration_s=30, pinned=True)  # no budget_s: 120 s
    short = make_notice("SHORT", pages=3, duration_s=20)  # 3 × 20 ≤ 120
    rotation = Rotation()
    rotation.update([long, short])
    assert turn_of(rotation, 7) == [("LONG", 0, 0), ("LONG", 1, 0), ("LONG", 2, 0),
                                    ("LONG", 3, 8), ("SHORT", 0, 0), ("SHORT", 1, 0),
                                    ("SHORT", 2, 0)]
    assert turn_of(rotation, 1) == [("LONG", 4, 0)]


def test_a_budget_shorter_than_a_page_shows_one_page_per_turn() -> None:
    a = make_notice("A", pages=3, duration_s=60, pinned=True)
    a["budget_s"] = 10
    b = make_notice("B", duration_s=20)
    rotation = Rotation()
    rotation.update([a, b])
    assert turn_of(rotation, 6) == [("A", 0, 2), ("B", 0, 0), ("A", 1, 2), ("B", 0, 0),
                                    ("A", 2, 2), ("B", 0, 0)]


def test_a_lone_long_notice_goes_on_page_after_page() -> None:
    only = make_notice("ONLY", pages=8, duration_s=20)
    only["budget_s"] = 60
    rotation = Rotation()
    rotation.update([only])
    assert [p for _c, p, _m in turn_of(rotation, 10)] == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    # pages 2, 3, 4: the fourth turn began at page 1, so page 3 ends it
    assert [m for _c, _p, m in turn_of(rotation, 3)] == [0, 5, 0]


def test_a_changed_long_notice_starts_again_from_its_first_page() -> None:
    long = make_notice("LONG", pages=20, duration_s=20, pinned=True)
    other = make_notice("OTHER", duration_s=20)
    rotation = Rotation()
    rotation.update([long, other])
    turn_of(rotation, 7)  # a whole turn of LONG, then OTHER
    changed = dict(long, version=2)
    rotation.update([changed, other])
    assert turn_of(rotation, 1) == [("LONG", 0, 0)]


def test_budget_s_is_checked_by_the_protocol() -> None:
    from player import protocol

    notice = {k: v for k, v in make_notice("P1").items() if k != "_pages"}
    protocol.check_notice(notice)  # absent: fine
    for good in (10, 120, 3600):
        protocol.check_notice({**notice, "budget_s": good})
    for bad in (9, 3601, "120", True, 12.5, None):
        with pytest.raises(protocol.ProtocolError):
            protocol.check_notice({**notice, "budget_s": bad})
