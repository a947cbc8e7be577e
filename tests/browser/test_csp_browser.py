"""The admin's pages under its Content-Security-Policy in a real Chromium: every script they
need still runs (the dashboard's live connection, the account page's token field; the alert
page's poll in tests/browser/test_alerts_browser.py, which watches the same way) and the
browser reports no violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from tests.browser.test_main_path import log_in
from tests.live import LiveServer

pytestmark = pytest.mark.browser


def watch_policy(page: Page) -> list[str]:
    """The policy violations this page reports from now on (the browser's console message and
    the `securitypolicyviolation` event both), collected in the returned list."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if isinstance(msg, ConsoleMessage) and "Content Security Policy" in msg.text
            else None)
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('Content Security Policy: ' + e.violatedDirective + "
                         "' ' + e.blockedURI));")
    return violations


def test_the_admin_pages_run_under_the_policy_without_a_violation(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    violations = watch_policy(page)
    try:
        log_in(page, live_server, "admin")
        page.goto(live_server.url + "/admin/alerts")
        alert = page.locator("td.title-cell a").first.get_attribute("href")
        assert alert and alert.startswith("/admin/alerts/")  # the demo's alert
        for path in ("/admin/", "/admin/dashboard", "/admin/notices", "/admin/stats",
                     "/admin/account", "/admin/screens", "/admin/users", "/admin/audit",
                     "/admin/notices/new", "/admin/alerts", alert):
            response = page.goto(live_server.url + path)
            assert response is not None and response.ok, path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            page.wait_for_load_state("networkidle")
        assert page.locator("img.qr").evaluate("img => img.naturalWidth") > 0  # img-src
        # The dashboard's script ran: its live connection says so.
        page.goto(live_server.url + "/admin/dashboard")
        page.wait_for_function("() => window.io !== undefined")
        assert violations == []
    finally:
        context.close()
