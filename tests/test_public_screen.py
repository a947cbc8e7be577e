"""A screen's page for residents (/s/<code>) and its QR code."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import zxingcpp
from flask.testing import FlaskClient
from PIL import Image

from server.extensions import db
from server.models import ScanEvent
from server.models.base import utcnow
from server.services import notices
from server.services import screens as screen_service
from server.services.notices import NoticeInput
from tests.conftest import World


def publish(world: World, targets: list[int], title: str, **kw: object) -> notices.Notice:
    editor = world.county_editor
    data = NoticeInput(title=title, body="正文。", category="village", targets=targets,
                       **kw)  # type: ignore[arg-type]
    n = notices.create(editor, data)
    notices.submit(editor, n)
    notices.approve(world.county_reviewer, n)
    notices.publish(editor, n)
    return n


def links(page: str) -> list[str]:
    return re.findall(r'<a href="(/n/[^"]+)"', page)


def test_the_page_lists_exactly_what_the_screen_shows(client: FlaskClient, world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "村委会门口")
    county = publish(world, [world.county.id], "全县通知")
    town = publish(world, [world.town.id], "柳河镇通知")
    pinned = publish(world, [world.village.id], "置顶村通知", pinned=True)
    publish(world, [world.village2.id], "别村通知")
    publish(world, [world.other_town.id], "别镇通知")
    gone = publish(world, [world.village.id], "已撤回")
    notices.withdraw(world.county_editor, gone, "发错了")
    draft = notices.create(world.county_editor, NoticeInput(
        title="草稿", body="x", category="village", targets=[world.village.id]))

    resp = client.get(f"/s/{screen.code}?lang=zh")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "村委会门口" in page and "前王庄村" in page and "柳河镇" in page
    expected = notices.live_for_regions([world.village.id])
    assert {n.code for n in expected} == {county.code, town.code, pinned.code}
    assert links(page) == [f"/n/{n.code}?s={screen.code}" for n in expected]
    assert links(page)[0] == f"/n/{pinned.code}?s={screen.code}"  # pinned first
    for absent in ("别村通知", "别镇通知", "已撤回", draft.current.title):
        assert absent not in page
    assert "<script" not in page


def test_expired_notices_leave_the_page(client: FlaskClient, world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    soon = publish(world, [world.village.id], "快过期", expire_at=utcnow() + timedelta(hours=1))
    page = client.get(f"/s/{screen.code}").get_data(as_text=True)
    assert soon.code in page
    soon.live_revision.expire_at = utcnow() - timedelta(seconds=1)
    page = client.get(f"/s/{screen.code}").get_data(as_text=True)
    assert soon.code not in page


def test_a_scan_from_the_screen_page_is_counted_for_the_screen(
    client: FlaskClient, world: World
) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    n = publish(world, [world.village.id], "通知")
    page = client.get(f"/s/{screen.code}").get_data(as_text=True)
    assert client.get(links(page)[0]).status_code == 200
    events = db.session.scalars(db.select(ScanEvent)).all()
    assert [(e.notice_id, e.screen_code) for e in events] == [(n.id, screen.code)]


def test_empty_screen_and_unknown_codes(client: FlaskClient, world: World) -> None:
    screen, _t = screen_service.provision(None, world.other_village, "南岭村口")
    resp = client.get(f"/s/{screen.code}?lang=en")
    assert resp.status_code == 200
    assert "Nothing is shown on this screen at the moment" in resp.get_data(as_text=True)
    for code in ("ZZZZZZ", "x", "a" * 40, "%3Cscript%3E"):
        resp = client.get(f"/s/{code}?lang=en")
        assert resp.status_code == 404, code
        body = resp.get_data(as_text=True)
        assert "No screen has the code" in body and "<script>" not in body
    assert client.get("/s/ZZZZZZ/qr.png").status_code == 404


def test_qr_codes_lead_to_the_screen_page(client: FlaskClient, world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    resp = client.get(f"/s/{screen.code}/qr.png")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    img = Image.open(io.BytesIO(resp.data))
    assert [r.text for r in zxingcpp.read_barcodes(img)] == [f"http://cp.test/s/{screen.code}"]
    svg = client.get(f"/s/{screen.code}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert svg.data.startswith(b"<?xml")
    # The page the code leads to is the screen's page.
    assert client.get(f"/s/{screen.code}").status_code == 200
