"""The live dashboard in a real browser: a real headless player connects to a real `cunping
serve`, and the online count on the open page goes up, then down when the player stops — with
no reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_main_path import log_in
from tests.live import LivePlayer, LiveServer

pytestmark = pytest.mark.browser

LIVE_TIMEOUT_MS = 15_000  # a player's connect (fonts, handshake) on a busy CI machine


def count(page: Page, key: str) -> int:
    return int(page.locator(f'[data-count="{key}"]').inner_text())


def test_the_online_count_follows_a_real_player_without_reload(
    browser: Browser, live_server: LiveServer, artifacts: Path, tmp_path: Path
) -> None:
    out = live_server.run_python(
        "from server.services import regions, screens\n"
        "screen, token = screens.provision(None, regions.get('371399101002'), '仪表盘测试屏',"
        " width=1280, height=720)\n"
        "print(screen.code, token)"
    )
    code, token = out.split()[-2:]
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_server, "admin")
    page.goto(live_server.url + "/admin/dashboard")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")
    online, offline, total = count(page, "online"), count(page, "offline"), count(page, "total")
    row = page.locator(f'#screens-now tr[data-code="{code}"] .state-cell')
    expect(row).to_have_attribute("data-online", "false")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    player = LivePlayer.create(tmp_path / "player", live_server.url, token)
    player.start()
    try:
        expect(page.locator('[data-count="online"]')).to_have_text(
            str(online + 1), timeout=LIVE_TIMEOUT_MS)
        expect(page.locator('[data-count="offline"]')).to_have_text(str(offline - 1))
        assert count(page, "total") == total
        expect(row).to_have_attribute("data-online", "true")
        expect(row.locator(".state-online")).to_be_visible()
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    except Exception:
        print(f"--- player log ---\n{player.log_tail()}")
        raise
    finally:
        player.stop()

    expect(page.locator('[data-count="online"]')).to_have_text(str(online),
                                                               timeout=LIVE_TIMEOUT_MS)
    expect(page.locator('[data-count="offline"]')).to_have_text(str(offline))
    expect(row).to_have_attribute("data-online", "false")
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    context.close()


def test_the_dashboard_is_complete_without_javascript(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                  java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server, "admin")
    page.goto(live_server.url + "/admin/dashboard")
    for key in ("online", "offline", "total", "offline_long"):
        assert page.locator(f'[data-count="{key}"]').inner_text().strip().isdigit()
    expect(page.locator("#boot-chart rect")).to_have_count(30)
    expect(page.locator("#boot-table tbody tr").first).to_be_visible()
    context.close()


def test_a_screenshot_from_a_real_player_appears_on_the_page(
    browser: Browser, live_server: LiveServer, tmp_path: Path
) -> None:
    out = live_server.run_python(
        "from server.services import regions, screens\n"
        "screen, token = screens.provision(None, regions.get('371399101002'), '截图测试屏',"
        " width=1280, height=720)\n"
        "print(screen.id, token)"
    )
    screen_id, token = out.split()[-2:]
    player = LivePlayer.create(tmp_path / "player", live_server.url, token)
    player.start()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    try:
        log_in(page, live_server, "liuhe_editor")
        page.goto(live_server.url + "/admin/dashboard")
        online = page.locator("#screens-now tr", has_text="截图测试屏").locator(".state-online")
        expect(online).to_be_visible(timeout=LIVE_TIMEOUT_MS)  # live, no reload
        page.goto(f"{live_server.url}/admin/dashboard/screens/{screen_id}")
        expect(page.locator("#shot-wait")).to_be_hidden()  # nothing asked yet
        page.goto(live_server.url + "/admin/dashboard")
        page.locator("#screens-now tr", has_text="截图测试屏").locator("button").click()
        expect(page).to_have_url(f"{live_server.url}/admin/dashboard/screens/{screen_id}")
        page.wait_for_function(
            "() => { const img = document.getElementById('shot-img');"
            " return img && img.complete && img.naturalWidth > 0"
            " && !document.getElementById('shot-figure').hidden; }",
            timeout=LIVE_TIMEOUT_MS,
        )
        status = page.request.get(
            f"{live_server.url}/admin/dashboard/screens/{screen_id}/screenshot.json").json()
        assert status["pending"] is False and status["latest"]["width"] > 0
        # The spinner shows only while the screen is asked: not once it has answered, and not
        # on a fresh visit with nothing asked.
        expect(page.locator("#shot-wait")).to_be_hidden()
        page.reload()
        expect(page.locator("#shot-figure")).to_be_visible()
        expect(page.locator("#shot-wait")).to_be_hidden()
        image = page.request.get(live_server.url + status["latest"]["url"])
        assert image.headers["content-type"] == "image/jpeg" and image.body()[:2] == b"\xff\xd8"
    except Exception:
        print(f"--- player log ---\n{player.log_tail()}")
        raise
    finally:
        player.stop()
        context.close()
