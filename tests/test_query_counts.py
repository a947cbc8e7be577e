"""The notice list, the overview, the review queue and the dashboard cost the same number of
SQL statements however many notices and screens a county has, and each page lists a bounded
number of rows (bench/bigdata.py times them on 100,000 notices and 10,000 screens; this is
the regression check that runs everywhere, on both databases).

Two counties are seeded with the benchmark's seeder: a small one and one ten times larger.
Their administrators (and town editors) open the same pages; the statements counted with a
SQLAlchemy event listener must be the same for both.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from admin.notices import PER_PAGE
from server.extensions import db
from server.services import dashboard as board
from tests.conftest import AuthActions, counting


def _bigdata() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "bigdata.py"
    spec = importlib.util.spec_from_file_location("bench_bigdata", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_bigdata", module)
    spec.loader.exec_module(module)
    return module


bigdata = _bigdata()

SMALL = bigdata.Sizes(towns=2, villages=2, screens=12, notices=20, history_days=4,
                      play_screens=3, play_days=2, scans=30, screenshots=2)
LARGE = bigdata.Sizes(towns=3, villages=4, screens=160, notices=240, history_days=4,
                      play_screens=3, play_days=2, scans=30, screenshots=2)


@pytest.fixture
def counties(app: Flask) -> dict[str, Any]:
    """County 1 small, county 2 ten times larger, side by side in one database."""
    from werkzeug.security import generate_password_hash

    hashed = generate_password_hash(bigdata.PASSWORD, method="pbkdf2:sha256:1")
    seeded = {}
    for county, sizes in ((1, SMALL), (2, LARGE)):
        with db.engine.begin() as conn:
            seeded[county] = bigdata.seed(conn, sizes, county=county, password_hash=hashed)
    return seeded


def statements_for(client: FlaskClient, username: str, paths: list[str]) -> dict[str, int]:
    """Statements per page for `username`. Each request runs in an app context of its own, as
    on a real server (the test's context would keep one session, and its identity map, across
    requests); each page is opened once before counting, so that per-process caches (finished
    days of the boot rate) are warm alike."""
    app = client.application
    with app.app_context():
        auth = AuthActions(client)
        auth.logout()
        assert auth.login(username, bigdata.PASSWORD).status_code == 302
    counts = {}
    for path in paths:
        with app.app_context():
            assert client.get(path).status_code == 200, path
        with app.app_context(), counting() as statements:
            resp = client.get(path)
            assert resp.status_code == 200, path
        counts[path] = len(statements)
    return counts


SLACK = 6  # selectin loads of live and pending revisions' targets and pictures
PAGES = ["/admin/", "/admin/notices", "/admin/notices?page=2", "/admin/notices?status=published",
         "/admin/notices?status=expired&category=finance", "/admin/notices?q=%E6%9D%91",
         "/admin/review", "/admin/dashboard", "/admin/dashboard/counts.json"]


@pytest.mark.parametrize("role", ["admin", "town01_editor"])
def test_statements_do_not_grow_with_notices_and_screens(
    client: FlaskClient, counties: dict[str, Any], role: str
) -> None:
    small = statements_for(client, f"c1_{role}", PAGES)
    large = statements_for(client, f"c2_{role}", PAGES)
    # The large county's pages list 30 notices and 50 screens where the small one's list a
    # dozen: a statement per row would add dozens. A few more are allowed: a related list
    # that is empty on a small page (no pending edits, no pictures) is not loaded at all.
    grew = {p: large[p] - small[p] for p in PAGES if large[p] - small[p] > SLACK}
    assert not grew, (small, large)
    # The home page counts what waits for each role: one COUNT per tile, however many notices.
    assert max(large.values()) <= 45, large


def rows(page: str, table_id: str | None = None) -> int:
    if table_id is not None:
        page = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return len(re.findall(r"<tr[ >]", body))


def test_pages_list_a_bounded_number_of_rows(
    client: FlaskClient, counties: dict[str, Any]
) -> None:
    auth = AuthActions(client)
    assert auth.login("c2_admin", bigdata.PASSWORD).status_code == 302
    client.get("/admin/login?lang=en")
    page = client.get("/admin/notices").get_data(as_text=True)
    visible = int(re.search(r"(\d+) notices", page).group(1))  # type: ignore[union-attr]
    assert visible > 2 * PER_PAGE and rows(page) == PER_PAGE
    assert "Page 1 of" in page
    last = (visible + PER_PAGE - 1) // PER_PAGE
    page = client.get(f"/admin/notices?page={last}").get_data(as_text=True)
    assert rows(page) == visible - (last - 1) * PER_PAGE

    page = client.get("/admin/dashboard").get_data(as_text=True)
    total = int(re.search(r'data-count="total">(\d+)<', page).group(1))  # type: ignore[union-attr]
    assert total > board.SCREENS_PER_PAGE
    assert rows(page, "screens-now") == board.SCREENS_PER_PAGE
    offline = int(re.search(r'data-count="offline_long">(\d+)<',  # type: ignore[union-attr]
                            page).group(1))
    assert rows(page, "offline-table") == min(offline, 10)
    data = client.get("/admin/dashboard/counts.json").get_json()
    assert data["total"] == total and len(data["screens"]) == board.SCREENS_PER_PAGE
    pages = (total + board.SCREENS_PER_PAGE - 1) // board.SCREENS_PER_PAGE
    page = client.get(f"/admin/dashboard?page={pages}").get_data(as_text=True)
    assert rows(page, "screens-now") == total - (pages - 1) * board.SCREENS_PER_PAGE
    assert f"Page {pages} of {pages}" in page


def test_a_short_list_sorted_from_its_pairs_is_the_list_the_index_gives(
    app: Flask, counties: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists with at most notices.FEW matches are sorted in Python from (id, time) pairs; the
    others page through the newest-first index. Both give the same pages."""
    from server.services import notices, users

    filters: list[dict[str, Any]] = [{}, {"status": "expired"}, {"category": "finance"},
                                     {"q": "村"}, {"status": "published", "category": "party"}]
    for username in ("c2_admin", "c2_town01_editor"):
        user = users.by_username(username)
        assert user is not None
        for kw in filters:
            pages = {}
            for few in (0, 10_000):
                monkeypatch.setattr(notices, "FEW", few)
                pages[few] = [
                    [n.id for n in notices.list_notices(user, page=p, per_page=25, **kw)[0]]
                    for p in (1, 2, 5)
                ]
            assert pages[0] == pages[10_000], (username, kw)
            assert pages[0][0], (username, kw)
