"""Statistics: scoping to the user's regions, periods in local days, the proof-of-play CSV
(BOM, content, formula guard) and the admin pages."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import Feedback, ScanEvent, Screen
from server.services import plays, stats
from server.services import screens as screen_service
from server.services.errors import NotFound, PermissionDenied, ValidationError
from tests.conftest import AuthActions, World
from tests.test_screens import publish

TODAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 4, 0)  # noon in Shanghai
P = stats.Period(date(2026, 3, 1), TODAY)


def play_batch(screen: Screen, batch: str, *items: tuple[str, datetime, int]) -> None:
    ack = plays.record(screen, {"batch": batch, "plays": [
        {"code": code, "version": 1, "started_at": at.isoformat() + "Z", "seconds": seconds}
        for code, at, seconds in items]}, NOW)
    assert ack["status"] == "ok" and ack["skipped"] == 0


class Town:
    """Screens in two villages of T1 and one of T2; notices for a village, the town, the
    county and the other town; plays, scans and questions on them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.v11, _t = screen_service.provision(None, world.village, "前王庄村口屏")
        self.v12, _t = screen_service.provision(None, world.village2, "后王庄村委会屏")
        self.v21, _t = screen_service.provision(None, world.other_village, "南岭村广场屏")
        self.village = publish(world, ["V11"], title="前王庄村财务公开")
        self.town = publish(world, ["T1"], title="柳河镇防火提示")
        self.county = publish(world, ["C0"], title="全县医保缴费")
        self.other = publish(world, ["V21"], title="南岭村村务公开")
        for notice in (self.village, self.town, self.county, self.other):
            notice.first_published_at = datetime(2026, 1, 1)  # live before the plays below
        db.session.commit()
        day1, day5 = datetime(2026, 3, 1, 2), datetime(2026, 3, 5, 2)
        play_batch(self.v11, "a", (self.village.code, day1, 30), (self.village.code, day5, 30),
                   (self.town.code, day5, 20), (self.county.code, day5, 10))
        play_batch(self.v12, "b", (self.town.code, day1, 20), (self.county.code, day1, 10))
        play_batch(self.v21, "c", (self.county.code, day5, 10), (self.other.code, day5, 40),
                   (self.other.code, day5, 40))
        at = datetime(2026, 3, 5, 3)
        for notice, code in ((self.village, self.v11.code), (self.village, None),
                             (self.county, self.v11.code), (self.county, self.v21.code),
                             (self.county, None), (self.other, self.v21.code),
                             (self.village, "UNKNOWN1")):
            db.session.add(ScanEvent(notice_id=notice.id, kind="view", screen_code=code, at=at))
        db.session.add(ScanEvent(notice_id=self.village.id, kind="app_open", at=at))
        db.session.add(ScanEvent(notice_id=self.village.id, kind="view", at=datetime(2026, 2, 1)))
        for notice, code in ((self.village, self.v11.code), (self.county, None),
                             (self.other, None)):
            db.session.add(Feedback(notice_id=notice.id, body="请问这个怎么算？", screen_code=code,
                                    created_at=at))
        db.session.commit()


@pytest.fixture
def town(world: World) -> Town:
    return Town(world)


def test_the_county_sees_everything(app: Flask, town: Town) -> None:
    t = stats.totals(town.world.admin, P)
    assert (t.plays, t.seconds, t.screens, t.notices) == (9, 210, 3, 4)
    # every view scan in the period (not app_open, not February), including an unknown screen
    assert t.scans == 7 and t.feedback == 3
    rows = {r.notice.code: r for r in stats.by_notice(town.world.admin, P)}
    assert (rows[town.other.code].plays, rows[town.other.code].seconds) == (2, 80)
    assert (rows[town.county.code].screens, rows[town.county.code].days) == (3, 2)
    assert rows[town.county.code].scans == 3 and rows[town.county.code].feedback == 1
    # Most time on screen first.
    assert stats.by_notice(town.world.admin, P)[0].notice.code == town.other.code


def test_a_town_editor_sees_the_towns_screens_only(app: Flask, town: Town) -> None:
    user = town.world.town_editor
    t = stats.totals(user, P)
    assert (t.plays, t.seconds, t.screens) == (6, 120, 2)
    rows = {r.notice.code: r for r in stats.by_notice(user, P)}
    assert town.other.code not in rows  # played and scanned in the other town only
    # The county-wide notice: plays and scans on the town's screens only; its scan and
    # question without a screen are not the town's.
    county = rows[town.county.code]
    assert (county.plays, county.seconds, county.screens, county.scans, county.feedback) == (
        2, 20, 2, 1, 0)
    # The village notice: the scan from its screen, the one without a screen (aimed inside),
    # the one from an unknown screen code (counted as without a screen).
    assert rows[town.village.code].scans == 3 and rows[town.village.code].feedback == 1
    assert [r.screen.code for r in stats.by_screen(user, P)] == sorted(
        [town.v11.code, town.v12.code],
        key=lambda c: [town.v11.code, town.v12.code].index(c))


def test_a_village_editor_sees_the_village_only(app: Flask, town: Town) -> None:
    user = town.world.village_editor
    t = stats.totals(user, P)
    assert (t.plays, t.seconds, t.screens, t.notices) == (4, 90, 1, 3)
    screens = stats.by_screen(user, P)
    assert [(r.screen.code, r.plays, r.notices, r.days, r.scans) for r in screens] == [
        (town.v11.code, 4, 3, 2, 2)]
    assert stats.totals(town.world.nobody, P) == stats.Totals()
    assert stats.by_notice(town.world.nobody, P) == []
    assert stats.by_screen(town.world.nobody, P) == []


def test_days_are_local_and_zero_filled(app: Flask, town: Town) -> None:
    days = stats.by_day(town.world.admin, P)
    assert [d.day for d in days] == P.days and len(days) == 10
    assert [(d.day.day, d.plays) for d in days if d.plays] == [(1, 3), (5, 6)]
    one = stats.by_day(town.world.admin, stats.Period(date(2026, 3, 5), date(2026, 3, 5)),
                       town.other)
    assert [(d.plays, d.seconds) for d in one] == [(2, 80)]
    # A scan at 23:30 local on 4 March (15:30 UTC) is in 4 March, not 5 March.
    db.session.add(ScanEvent(notice_id=town.village.id, kind="view",
                             at=datetime(2026, 3, 4, 15, 30)))
    db.session.commit()
    march4 = stats.Period(date(2026, 3, 4), date(2026, 3, 4))
    march5 = stats.Period(date(2026, 3, 5), date(2026, 3, 5))
    assert stats.totals(town.world.admin, march4).scans == 1
    assert stats.totals(town.world.admin, march5).scans == 7
    assert march4.utc_bounds() == (datetime(2026, 3, 3, 16), datetime(2026, 3, 4, 16))


def test_period_defaults_and_refusals(app: Flask) -> None:
    p = stats.period(now=NOW)
    assert (p.start, p.end) == (date(2026, 2, 9), TODAY) and len(p.days) == 30
    assert stats.period(date(2026, 3, 1), date(2026, 3, 1), NOW).days == [date(2026, 3, 1)]
    with pytest.raises(ValidationError):
        stats.period(date(2026, 3, 2), date(2026, 3, 1), NOW)
    with pytest.raises(ValidationError):
        stats.period(date(2020, 1, 1), date(2026, 3, 1), NOW)
    assert stats.parse_day("2026-03-01") == date(2026, 3, 1)
    assert stats.parse_day("yesterday") is None and stats.parse_day("") is None


def test_a_notice_report_needs_permission_to_see_the_notice(app: Flask, town: Town) -> None:
    w = town.world
    with pytest.raises(PermissionDenied):
        stats.notice_for(w.village_editor, town.other.code)
    with pytest.raises(NotFound):
        stats.notice_for(w.admin, "NoSuch")
    notice = stats.notice_for(w.village_editor, town.county.code)  # county-wide: visible
    report = stats.notice_report(w.village_editor, notice, P)
    assert (report.totals.plays, report.totals.screens) == (1, 1)
    assert [(r.screen_code, r.day, r.plays) for r in report.proof] == [
        (town.v11.code, date(2026, 3, 5), 1)]
    full = stats.notice_report(w.admin, notice, P)
    assert [r.screen.code for r in full.screens] == [town.v11.code, town.v12.code,
                                                     town.v21.code]


def parse_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    text = data.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_a_row_per_notice_screen_and_day(app: Flask, town: Town) -> None:
    rows = parse_csv(stats.csv_bytes(town.world.town_editor, P))
    assert rows[0] == stats.csv_header() and len(rows[0]) == 9  # in the user's language
    body = rows[1:]
    assert len(body) == 6  # v11: 3 notices on 5 March + 1 on 1 March; v12: 2 on 1 March
    assert [town.village.code, "前王庄村财务公开", town.v11.code, "前王庄村口屏", "前王庄村",
            "清源县 · 柳河镇 · 前王庄村", "2026-03-05", "1", "30"] in body
    assert all(r[2] != town.v21.code for r in body)
    assert [r[6] for r in body] == sorted(r[6] for r in body)
    assert sum(int(r[8]) for r in body) == 120


def test_csv_cells_cannot_start_a_formula(app: Flask, world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "@SUM(1+1)")
    notice = publish(world, ["V11"], title='=HYPERLINK("http://evil","点我")')
    notice.first_published_at = datetime(2026, 1, 1)
    play_batch(screen, "f", (notice.code, datetime(2026, 3, 5, 2), 20))
    rows = parse_csv(stats.csv_bytes(world.admin, P))
    assert rows[1][1] == "'=HYPERLINK(\"http://evil\",\"点我\")"
    assert rows[1][3] == "'@SUM(1+1)"
    assert rows[1][7:] == ["1", "20"]
    for value in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert stats.safe_cell(value) == "'" + value
    for value in ("村", "1-2", "", 5, -3):
        assert stats.safe_cell(value) == value
    small = parse_csv(stats.rows_csv(["a"], [["-2+3"], [7]]))
    assert small == [["a"], ["'-2+3"], ["7"]]


def test_csv_streams_in_pieces(app: Flask, town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "CSV_CHUNK", 2)
    pieces = list(stats.csv_chunks(town.world.admin, P))
    assert len(pieces) >= 5 and pieces[0].startswith("\ufeff")
    assert "".join(pieces).encode() == stats.csv_bytes(town.world.admin, P)


# --- the admin pages ---------------------------------------------------------------------


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def test_the_statistics_page(app: Flask, client: FlaskClient, auth: AuthActions,
                             town: Town) -> None:
    auth.login("teditor")
    html = page(client, "/admin/stats?start=2026-03-01&end=2026-03-10&lang=en")
    assert 'aria-current="page">Statistics<' in html
    assert "前王庄村财务公开" in html and "南岭村村务公开" not in html
    assert town.v11.code in html and town.v21.code not in html
    assert html.count("<svg") == 2 and 'role="img"' in html
    assert f"/admin/stats/notice/{town.village.code}?start=2026-03-01" in html
    assert "/admin/stats/plays.csv?start=2026-03-01&amp;end=2026-03-10" in html
    # Default period: the last 30 days; bad dates fall back to it with a message.
    assert "Last 30 days" in page(client, "/admin/stats")
    html = page(client, "/admin/stats?start=2026-03-10&end=2026-03-01&lang=en")
    assert "The start must not be after the end." in html
    html = page(client, "/admin/stats?start=soon&lang=en")
    assert "YYYY-MM-DD" in html


def test_the_notice_page_and_its_csv(app: Flask, client: FlaskClient, auth: AuthActions,
                                     town: Town) -> None:
    auth.login("veditor")
    html = page(client, f"/admin/stats/notice/{town.county.code}?start=2026-03-01&end=2026-03-10")
    assert "全县医保缴费" in html and town.v11.code in html and town.v12.code not in html
    page(client, f"/admin/stats/notice/{town.other.code}", 403)
    page(client, "/admin/stats/notice/NoSuch", 404)
    response = client.get(
        f"/admin/stats/notice/{town.county.code}/plays.csv?start=2026-03-01&end=2026-03-10")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = parse_csv(response.get_data())
    assert [r[2] for r in rows[1:]] == [town.v11.code]
    assert client.get(f"/admin/stats/notice/{town.other.code}/plays.csv").status_code == 403


def test_the_csv_downloads(app: Flask, client: FlaskClient, auth: AuthActions,
                           town: Town) -> None:
    auth.login("admin")
    q = "?start=2026-03-01&end=2026-03-10&lang=en"
    rows = parse_csv(client.get("/admin/stats/plays.csv" + q).get_data())
    assert len(rows) == 1 + 8
    rows = parse_csv(client.get("/admin/stats/notices.csv" + q).get_data())
    assert rows[0][0] == "Notice code" and len(rows) == 1 + 4
    rows = parse_csv(client.get("/admin/stats/screens.csv" + q).get_data())
    assert [r[0] for r in rows[1:]] == [town.v11.code, town.v12.code, town.v21.code]


def test_the_pages_need_a_login(app: Flask, client: FlaskClient) -> None:
    for url in ("/admin/stats", "/admin/stats/plays.csv", "/admin/stats/notice/x",
                "/admin/cadence", "/admin/cadence/overdue.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_the_demo_has_a_month_of_statistics_and_cadence_rules(app: Flask) -> None:
    from server import demo
    from server.services import cadence, users

    assert demo.load()
    admin = users.by_username("admin")
    assert admin is not None
    p = stats.period()
    days = stats.by_day(admin, p)
    assert sum(1 for d in days if d.plays) >= 20  # most days of the month have plays
    screens = stats.by_screen(admin, p)
    assert len(screens) >= 5 and all(r.plays for r in screens)
    assert stats.totals(admin, p).scans > 0
    # No notice was played before it was published.
    for row in stats.by_notice(admin, p):
        first = min(r.day for r in stats.proof_rows(admin, p, row.notice))
        assert row.notice.published_at is not None
        assert first >= stats.local_day(row.notice.published_at)
    rules = {(r.region.code, r.category.key): r.every_days for r in cadence.rules_for(admin)}
    assert rules == {("371399", "finance"): 31, ("371399", "village"): 92}
    late = cadence.overdue(admin)
    assert any(r.days_overdue for r in late) and any(r.days_overdue is None for r in late)
    # The demo player's screen is one of them, its token kept for `cunping demo --serve`.
    token = (Path(app.instance_path) / "demo-player" / "demo-screen-token").read_text().strip()
    assert screen_service.authenticate(token) is not None
    # The dashboard's boot rate has the month too: screens in use since before it.
    from server.services import presence

    rates = presence.boot_rate(presence.dashboard_roots(admin))
    assert rates.overall.percent is not None and 60 <= rates.overall.percent <= 100


def test_the_demo_statistics_agree_with_its_screens_history(app: Flask) -> None:
    """No screen "never connected" with a boot rate and plays: every screen that has plays was
    on those days, and says when it was last heard from (its last day on)."""
    from sqlalchemy import func, select

    from server import demo
    from server.extensions import db
    from server.models import PlayStat, Screen, ScreenDay
    from server.services import presence

    assert demo.load()
    on_days = {(s, d) for s, d in db.session.execute(select(ScreenDay.screen_id, ScreenDay.day))}
    played = {(s, d) for s, d in db.session.execute(
        select(PlayStat.screen_id, PlayStat.day).where(PlayStat.plays > 0))}
    assert played and played <= on_days, sorted(played - on_days)[:5]
    last_on = dict(db.session.execute(
        select(ScreenDay.screen_id, func.max(ScreenDay.last_seen_at)).group_by(
            ScreenDay.screen_id)).all())
    for screen in db.session.scalars(select(Screen)):
        if screen.id in last_on:
            assert screen.last_seen_at is not None, f"{screen.name} has days on, never seen"
            assert screen.last_seen_at >= last_on[screen.id], screen.name
    silent = presence.offline_for_long(presence.all_screens())
    assert silent, "the demo's other screens are off now"
    assert [r.screen.name for r in silent if r.never] == []
