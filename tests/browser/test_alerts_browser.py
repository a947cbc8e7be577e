"""An alert issued through the admin in a real browser: the form and its confirm step, a real
headless player in the village that takes it over, the delivery table turning to 1 / 1 without
a reload, the residents' page on a phone, and the cancel that gives the screen back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_csp_browser import watch_policy
from tests.browser.test_main_path import log_in
from tests.live import LivePlayer, LiveServer, wait_until

pytestmark = pytest.mark.browser

VILLAGE = "371399102002"  # 南岭村: no other browser test puts screens there
TITLE = "石桥镇南岭村山洪地质灾害橙色预警（浏览器测试）"


def test_issue_deliver_and_cancel_an_alert(
    browser: Browser, live_server: LiveServer, artifacts: Path, tmp_path: Path
) -> None:
    out = live_server.run_python(
        "from server.services import regions, screens\n"
        f"screen, token = screens.provision(None, regions.get('{VILLAGE}'), '南岭村村委会屏',"
        " width=1280, height=720)\n"
        "print(screen.code, token)"
    )
    _code, token = out.split()[-2:]
    player = LivePlayer.create(tmp_path / "player", live_server.url, token)
    player.start()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    violations = watch_policy(page)  # the alert page's poll runs under the admin's policy
    try:
        wait_until(lambda: any(f.get("showing") for f in player.frames_log()) or
                   len(player.frames_log()) > 1, 30, what="the player's first frames")
        log_in(page, live_server, "county_alert")
        page.click("a[href='/admin/alerts']")
        page.click("#new-alert")
        page.check("input[name=level][value='2']")
        page.fill("#event", "地质灾害")
        page.fill("#title", TITLE)
        page.fill("#text", "受持续降雨影响，南岭村后山发生山体滑坡的可能性大。")
        page.fill("#instruction", "后山脚下住户立即转移到村委会。")
        page.locator("#targets label.check", has_text="南岭村").locator("input").check()
        page.screenshot(path=str(artifacts / "alert_form.png"), full_page=True)
        page.click("#review")
        expect(page.locator("#confirm-step")).to_be_visible()
        expect(page.locator("#screen-count")).to_have_text("1")
        page.click("#send")
        expect(page).to_have_url(re.compile(r"/admin/alerts/[A-Za-z0-9]+$"))
        code = page.url.rsplit("/", 1)[1]
        page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

        # The player takes the alert over, and the table says so without a reload.
        wait_until(lambda: any(f.get("alert") == code for f in player.frames_log()), 10,
                   what="the alert on the player's screen")
        expect(page.locator("#ack-count")).to_have_text("1 / 1", timeout=15_000)
        expect(page.locator("#delivery tr.acked")).to_have_count(1)
        assert page.evaluate("() => window.__sameDocument === true")
        page.screenshot(path=str(artifacts / "alert_detail.png"), full_page=True)

        phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        mobile = phone.new_page()
        mobile.goto(f"{live_server.url}/a/{code}")
        expect(mobile.locator("h1")).to_have_text(TITLE)
        mobile.screenshot(path=str(artifacts / "alert_phone.png"), full_page=True)

        # Cancel: a reason and a tick, then the screen drops the alert.
        page.fill("#cancel-reason", "险情解除（浏览器测试）")
        page.check("#cancel-checked")
        mark = max(f["seq"] for f in player.frames_log())
        page.click("#cancel")
        expect(page.locator(".ended-banner")).to_be_visible()
        wait_until(lambda: any(f["seq"] > mark and f.get("alert") is None
                               for f in player.frames_log()), 10,
                   what="the screen back to its notices")
        mobile.reload()
        expect(mobile.locator("#ended")).to_be_visible()
        phone.close()
        assert violations == []
    finally:
        context.close()
        player.stop()
