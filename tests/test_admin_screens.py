"""The admin's screens pages through the Flask test client: the list with online/offline and
what each shows, pairing by code, rename/move/revoke/new token, and notice previews drawn by
the player's renderer."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from admin.screens import preview_cache
from server.extensions import db
from server.models import AuditEvent
from server.services import notices, revisions
from server.services import screens as screen_service
from server.services.notices import NoticeInput
from tests.conftest import AuthActions, World, csrf_token

SECRET = "pairing-secret-0123456789"


@pytest.fixture(autouse=True)
def english(client: FlaskClient) -> None:
    client.get("/admin/login?lang=en")


def html(resp: TestResponse) -> str:
    return resp.get_data(as_text=True)


def publish(world: World, targets: list[int], title: str = "关于召开村民代表会议的通知",
            publish_it: bool = True) -> notices.Notice:
    editor = world.county_editor
    data = NoticeInput(
        title=title,
        body="定于本周六上午九点在村委会召开村民代表会议，请准时参加。\n\n| 项目 | 金额 |\n"
        "| --- | ---: |\n| 修路 | 1,200 |",
        category="village",
        targets=targets,
    )
    n = notices.create(editor, data)
    if publish_it:
        notices.submit(editor, n)
        notices.approve(world.county_reviewer, n)
        notices.publish(editor, n)
    return n


def row_of(page: str, code: str) -> str:
    match = re.search(rf'<tr data-code="{code}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row for screen {code}"
    return match.group(1)


def audit_actions(screen_id: int) -> list[str]:
    events = db.session.scalars(
        db.select(AuditEvent)
        .where(AuditEvent.entity == "screen", AuditEvent.entity_id == screen_id)
        .order_by(AuditEvent.id)
    )
    return [e.action for e in events]


# --- the list ------------------------------------------------------------------------------


def test_list_shows_online_offline_showing_and_revision(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    notice = publish(world, [world.village.id])
    live, _t = screen_service.provision(None, world.village, "村委会门口")
    behind, _t = screen_service.provision(None, world.village2, "后村广场", 1080, 1920)
    quiet, _t = screen_service.provision(None, world.village, "老屏")
    screen_service.record_connect(live, "sid-live")
    screen_service.record_heartbeat(
        live, {"showing": notice.code, "revision": revisions.screen_revision(live),
               "digest": "x", "version": "0.3.1", "uptime_s": 60}, "sid-live")
    screen_service.record_connect(behind, "sid-behind")
    screen_service.record_heartbeat(
        behind, {"showing": None, "revision": 0, "digest": "x", "version": "0.3.0",
                 "uptime_s": 5}, "sid-behind")
    publish(world, [world.village2.id], "后王庄村通知")  # the behind screen has not caught up
    screen_service.record_connect(quiet, "sid-quiet")
    screen_service.record_disconnect(quiet, "sid-quiet")

    auth.login("teditor")
    page = html(client.get("/admin/screens"))
    assert "2 of 3 screens online" in page
    r = row_of(page, live.code)
    assert "ONLINE" in r and "OFFLINE" not in r
    assert notice.code in r and "关于召开村民代表会议的通知" in r
    assert "up to date" in r and "0.3.1" in r
    assert "清源县 · 柳河镇 · 前王庄村" in r and "1920×1080" in r
    assert "last seen" in r and ("ago" in r or "now" in r)
    r = row_of(page, behind.code)
    assert "ONLINE" in r and "behind" in r and "Standby" in r and "portrait" in r
    r = row_of(page, quiet.code)
    assert "OFFLINE" in r and "not reported" in r

    only_online = html(client.get("/admin/screens?state=online"))
    assert live.code in only_online and behind.code in only_online
    assert quiet.code not in only_online
    only_offline = html(client.get("/admin/screens?state=offline"))
    assert quiet.code in only_offline and live.code not in only_offline
    by_region = html(client.get(f"/admin/screens?region={world.village2.id}"))
    assert behind.code in by_region and live.code not in by_region


def test_a_screen_that_cannot_save_or_whose_clock_is_off_is_flagged(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    full, _t = screen_service.provision(None, world.village, "磁盘满的屏")
    slow, _t = screen_service.provision(None, world.village, "时钟慢的屏")
    fast, _t = screen_service.provision(None, world.village, "时钟快的屏")
    fine, _t = screen_service.provision(None, world.village, "正常的屏")
    beat = {"showing": None, "revision": 0, "digest": "x", "version": "0.4.0", "uptime_s": 5,
            "store_error": None, "clock_offset_s": 3}
    for screen, extra in ((full, {"store_error": "No space left on device"}),
                          (slow, {"clock_offset_s": 7200}),
                          (fast, {"clock_offset_s": -2 * 86400}), (fine, {})):
        screen_service.record_connect(screen, f"sid-{screen.code}")
        screen_service.record_heartbeat(screen, {**beat, **extra}, f"sid-{screen.code}")

    auth.login("teditor")
    page = html(client.get("/admin/screens"))
    assert "cannot save to its storage: No space left on device" in row_of(page, full.code)
    assert "screen clock 2 h behind" in row_of(page, slow.code)
    assert "screen clock 2 days ahead" in row_of(page, fast.code)
    quiet = row_of(page, fine.code)  # 3 s off is not worth a word
    assert "screen clock" not in quiet and "cannot save" not in quiet
    detail = html(client.get(f"/admin/screens/{slow.id}"))
    assert "Faults" in detail and "screen clock 2 h behind" in detail
    assert "Faults" not in html(client.get(f"/admin/screens/{fine.id}"))

    client.get("/admin/login?lang=zh")  # the default language says it in Chinese
    page = html(client.get("/admin/screens"))
    assert "屏幕时钟慢 2 小时" in row_of(page, slow.code)
    assert "屏幕时钟快 2 天" in row_of(page, fast.code)
    assert "本机存储无法保存：No space left on device" in row_of(page, full.code)


@pytest.mark.parametrize(("offset", "words"), [
    (59, None), (-59, None), (60, "screen clock 1 min behind"),
    (-45 * 60, "screen clock 45 min ahead"), (7190, "screen clock 2 h behind"),
    (47 * 3600, "screen clock 47 h behind"), (-2 * 86400, "screen clock 2 days ahead"),
    (86400 * 365 * 56, "screen clock 20440 days behind"), (None, None)])
def test_clock_offsets_in_words(app: Flask, offset: int | None, words: str | None) -> None:
    from admin.screens import clock_note

    with app.test_request_context("/?lang=en"):
        assert clock_note(offset) == words


def test_list_only_shows_screens_in_the_users_regions(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    mine, _t = screen_service.provision(None, world.village, "我的屏")
    other, _t = screen_service.provision(None, world.other_village, "别人的屏")
    auth.login("teditor")
    page = html(client.get("/admin/screens"))
    assert mine.code in page and other.code not in page
    assert client.get(f"/admin/screens/{other.id}").status_code == 403
    assert client.get("/admin/screens/99999").status_code == 404


# --- pairing -------------------------------------------------------------------------------


def pair(client: FlaskClient, **data: Any) -> TestResponse:
    return client.post(
        "/admin/screens/pair", data={"csrf_token": csrf_token(client, "/admin/screens"), **data}
    )


def test_pairing_by_code_creates_the_screen_in_the_village(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    req = screen_service.start_pairing(SECRET, 1280, 720)
    auth.login("teditor")
    resp = pair(client, code=req.code, region=str(world.village.id), name="村委会门口")
    assert resp.status_code == 302
    screen = screen_service.list_for(world.town_editor)[0]
    assert resp.headers["Location"].endswith(f"/admin/screens/{screen.id}")
    assert (screen.name, screen.region_id, screen.width, screen.height) == (
        "村委会门口", world.village.id, 1280, 720)
    assert "token" in screen_service.pairing_status(SECRET)
    assert audit_actions(screen.id) == ["pair"]


def test_pairing_failures_keep_what_was_typed(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    req = screen_service.start_pairing(SECRET)
    auth.login("teditor")
    wrong = "000000" if req.code != "000000" else "111111"
    resp = pair(client, code=wrong, region=str(world.village.id), name="村委会门口")
    assert resp.status_code == 422
    page = html(resp)
    assert "No screen is waiting with this pairing code" in page
    assert f'value="{wrong}"' in page and 'value="村委会门口"' in page
    assert re.search(rf'<option selected value="{world.village.id}"|'
                     rf'<option value="{world.village.id}" selected', page)

    resp = pair(client, code="12ab", region="", name="")
    assert resp.status_code == 422
    page = html(resp)
    assert "Type the 6 digits" in page and "Choose the village" in page
    assert 'value="12ab"' in page

    # A village outside the editor's town: refused, and nothing is claimed.
    resp = pair(client, code=req.code, region=str(world.other_village.id), name="南岭")
    assert resp.status_code == 403
    page = html(resp)
    assert "outside your regions" in page and 'value="南岭"' in page
    assert screen_service.list_for(world.admin) == []
    assert "code" in screen_service.pairing_status(SECRET)


def test_people_without_an_editor_role_cannot_pair(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    req = screen_service.start_pairing(SECRET)
    auth.login("treviewer")
    page = html(client.get("/admin/screens"))
    assert "Pair a screen" not in page
    resp = pair(client, code=req.code, region=str(world.village.id), name="屏")
    assert resp.status_code == 403
    assert screen_service.list_for(world.admin) == []


# --- one screen ----------------------------------------------------------------------------


def test_rename_and_move_are_audited(client: FlaskClient, auth: AuthActions, world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "旧名")
    auth.login("teditor")
    url = f"/admin/screens/{screen.id}"
    page = html(client.get(url))
    assert f"/s/{screen.code}" in page and f"/s/{screen.code}/qr.svg" in page
    resp = client.post(url, data={"csrf_token": csrf_token(client, url), "name": "新名",
                                  "region": str(world.village2.id)})
    assert resp.status_code == 302
    assert screen.name == "新名" and screen.region_id == world.village2.id
    assert audit_actions(screen.id) == ["create", "rename", "move"]

    # Moving into another town: refused with the reason, the typed name kept in the form —
    # and not saved: a refused form changes nothing.
    resp = client.post(url, data={"csrf_token": csrf_token(client, url), "name": "又一个名字",
                                  "region": str(world.other_village.id)})
    assert resp.status_code == 422
    assert "outside your regions" in html(resp) and "又一个名字" in html(resp)
    db.session.refresh(screen)
    assert screen.region_id == world.village2.id and screen.name == "新名"
    assert audit_actions(screen.id) == ["create", "rename", "move"]
    resp = client.post(url, data={"csrf_token": csrf_token(client, url), "name": "",
                                  "region": str(world.village2.id)})
    assert resp.status_code == 422 and "Give the screen a name" in html(resp)


def test_revoke_needs_a_reason_and_a_confirmation(
    client: FlaskClient, auth: AuthActions, world: World, app: Flask
) -> None:
    screen, token = screen_service.provision(None, world.village, "屏")
    screen_service.record_connect(screen, "sid-1")
    auth.login("teditor")
    url = f"/admin/screens/{screen.id}"
    resp = client.post(url + "/revoke", data={"csrf_token": csrf_token(client, url),
                                              "reason": "", "confirm": ""})
    assert resp.status_code == 422
    assert "Say why" in html(resp) and "Tick the box" in html(resp)
    assert screen.revoked_at is None

    from server import signals

    heard: list[dict[str, Any]] = []

    def listener(sender: Flask, **kw: Any) -> None:
        heard.append(kw)

    with signals.screen_changed.connected_to(listener, app):
        resp = client.post(url + "/revoke", data={"csrf_token": csrf_token(client, url),
                                                  "reason": "设备被盗", "confirm": "y"})
    assert resp.status_code == 302
    assert screen.revoked_at is not None and screen_service.authenticate(token) is None
    assert heard and heard[0]["reason"] == "revoked" and heard[0]["sid"] == "sid-1"
    event = db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.entity == "screen", AuditEvent.action == "revoke")
    ).one()
    assert event.reason == "设备被盗"
    assert "REVOKED" in html(client.get(url))


def test_new_token_is_shown_once_and_replaces_the_old(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    screen, old = screen_service.provision(None, world.village, "屏")
    screen_service.revoke(None, screen, "test")
    auth.login("teditor")
    url = f"/admin/screens/{screen.id}"
    resp = client.post(url + "/token", data={"csrf_token": csrf_token(client, url)})
    assert resp.status_code == 201
    match = re.search(r'id="token-value" type="text" readonly value="(cps_[^"]+)"', html(resp))
    assert match
    new = match.group(1)
    assert screen_service.authenticate(new) is screen and screen_service.authenticate(old) is None
    assert screen.revoked_at is None
    assert new not in html(client.get(url))
    assert audit_actions(screen.id)[-1] == "token"


def test_other_towns_screens_cannot_be_changed(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    other, token = screen_service.provision(None, world.other_village, "南岭")
    auth.login("teditor")
    token_url = csrf_token(client, "/admin/screens")
    for path, data in (
        ("", {"name": "x", "region": str(world.village.id)}),
        ("/revoke", {"reason": "x", "confirm": "y"}),
        ("/token", {}),
    ):
        resp = client.post(f"/admin/screens/{other.id}{path}",
                           data={"csrf_token": token_url, **data})
        assert resp.status_code == 403, path
    assert other.name == "南岭" and other.revoked_at is None
    assert screen_service.authenticate(token) is other


# --- previews ------------------------------------------------------------------------------


def decode_qr(img: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(img)]


def test_preview_png_is_the_players_rendering_at_the_screens_sizes(
    client: FlaskClient, auth: AuthActions, world: World, app: Flask
) -> None:
    screen_service.provision(None, world.village, "竖屏", 1080, 1920)
    screen_service.provision(None, world.village2, "小屏", 1280, 720)
    screen_service.provision(None, world.other_village, "别镇", 800, 600)
    notice = publish(world, [world.town.id], publish_it=False)  # a draft: not live yet
    auth.login("teditor")
    detail = html(client.get(f"/admin/notices/{notice.id}"))
    assert "Preview on screens" in detail
    assert f"/admin/notices/{notice.id}/preview/1080x1920/1.png" in detail
    assert f"/admin/notices/{notice.id}/preview/1280x720/1.png" in detail
    assert "800x600" not in detail  # that screen is in another town

    resp = client.get(f"/admin/notices/{notice.id}/preview/1080x1920/1.png")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    img = Image.open(io.BytesIO(resp.data))
    assert img.format == "PNG" and img.size == (1080, 1920)
    assert decode_qr(img) == [f"http://cp.test/n/{notice.code}"]

    renders = preview_cache().renders
    assert client.get(f"/admin/notices/{notice.id}/preview/1080x1920/1.png").data == resp.data
    assert preview_cache().renders == renders  # served from the cache
    assert client.get(f"/admin/notices/{notice.id}/preview/1080x1920/99.png").status_code == 404
    assert client.get(f"/admin/notices/{notice.id}/preview/333x444/1.png").status_code == 404

    page = html(client.get(f"/admin/notices/{notice.id}/preview"))
    assert "1280×720" in page and "1080×1920" in page


def test_preview_defaults_to_full_hd_without_screens(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    notice = publish(world, [world.village.id])
    auth.login("veditor")
    detail = html(client.get(f"/admin/notices/{notice.id}"))
    assert f"/admin/notices/{notice.id}/preview/1920x1080/1.png" in detail
    img = Image.open(io.BytesIO(client.get(
        f"/admin/notices/{notice.id}/preview/1920x1080/1.png").data))
    assert img.size == (1920, 1080)
    assert decode_qr(img) == [f"http://cp.test/n/{notice.code}"]


def test_preview_of_another_towns_notice_is_refused(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    notice = publish(world, [world.other_village.id])
    auth.login("teditor")
    assert client.get(f"/admin/notices/{notice.id}/preview/1920x1080/1.png").status_code == 403
    assert client.get(f"/admin/notices/{notice.id}/preview").status_code == 403


def test_preview_without_a_chinese_font_says_so(
    client: FlaskClient, auth: AuthActions, world: World, app: Flask
) -> None:
    notice = publish(world, [world.village.id])
    app.extensions["cunping_preview_fonts"] = None  # as if find_fonts found nothing
    auth.login("teditor")
    detail = html(client.get(f"/admin/notices/{notice.id}"))
    assert "No font that draws Chinese is installed" in detail
    assert "/preview/1920x1080/1.png" not in detail
    resp = client.get(f"/admin/notices/{notice.id}/preview/1920x1080/1.png")
    assert resp.status_code == 503 and "fonts-noto-cjk" in html(resp)
