"""Journeys that used to hold a silent trap, walked in a real browser: a notice with a publish
time approved once goes live at its time with nobody clicking again."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_main_path import log_in, log_out
from tests.live import LiveServer, wait_until

pytestmark = pytest.mark.browser

BEIJING = ZoneInfo("Asia/Shanghai")


def _badge_shows(page: Page, state: str) -> bool:
    page.reload()
    return page.locator(f".head-badges .badge-{state}").count() > 0


def test_a_scheduled_notice_approved_once_goes_live_at_its_time(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_server, "qianwang_editor")
    page.goto(live_server.url + "/admin/notices/new")
    page.fill("#title", "前王庄村冬季防火通知（定时发布）")
    page.select_option("#category", "village")
    page.fill("#body", "冬季天干物燥，请各户注意用火安全。")
    page.locator("label.check", has_text="前王庄村").locator("input[name=targets]").check()
    when = datetime.now(BEIJING).replace(microsecond=0) + timedelta(seconds=30)
    publish_at = page.locator("#publish_at")
    publish_at.evaluate("el => { el.step = 1; }")  # the form takes minutes; this test, seconds
    publish_at.fill(when.strftime("%Y-%m-%dT%H:%M:%S"))
    page.click("#save")
    expect(page).to_have_url(re.compile(r"/admin/notices/\d+$"))
    detail_url = page.url
    code = page.locator(".meta code").first.inner_text()
    page.click("button[value=submit]")
    log_out(page)

    log_in(page, live_server, "qianwang_jiandu")
    page.goto(detail_url)
    approve = page.locator("button[value=approve]")
    expect(approve).to_contain_text(when.strftime("%H:%M"))  # the button says what it does
    approve.click()
    expect(page.locator(".head-badges .badge-scheduled")).to_be_visible()
    log_out(page)

    # Nobody clicks anything more: the scheduler puts it live at its time.
    log_in(page, live_server, "qianwang_editor")
    page.goto(detail_url)
    wait_until(lambda: _badge_shows(page, "published"), timeout=90, interval=1,
               what="the scheduled notice to go live")
    live_at = datetime.now(BEIJING)
    assert live_at >= when - timedelta(seconds=1), (live_at, when)
    history = page.locator("table.history").inner_text()
    assert "已发布" in history or "published" in history
    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    resident = phone.new_page()
    response = resident.goto(f"{live_server.url}/n/{code}")
    assert response is not None and response.status == 200
    phone.close()
    context.close()


@pytest.mark.parametrize("width", [360, 390])
def test_every_demo_notice_fits_a_phone_without_sideways_scrolling(
    browser: Browser, live_server: LiveServer, artifacts: Path, width: int
) -> None:
    codes = live_server.run_python(
        "from server.models import Notice, NoticeStatus\n"
        "from server.extensions import db\n"
        "print(' '.join(db.session.scalars(db.select(Notice.code).where("
        "Notice.status == NoticeStatus.PUBLISHED))))"
    ).split()
    assert len(codes) >= 5, codes
    phone = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=True,
                                has_touch=True, device_scale_factor=2, locale="zh-CN")
    page = phone.new_page()
    wide = []
    for code in codes:
        page.goto(f"{live_server.url}/n/{code}")
        sizes = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
            " Math.max(0, ...[...document.querySelectorAll('.table-wrap')].map("
            "w => w.scrollWidth - w.clientWidth))]")
        if sizes[0] > sizes[1] or sizes[2] > 1:
            wide.append((code, sizes))
        if page.locator(".table-wrap.reflow").count() and width == 390:
            page.screenshot(path=str(artifacts / "phone_table_390.png"), full_page=True)
    phone.close()
    assert wide == [], f"pages wider than a {width} px phone: {wide}"


def test_large_type_is_remembered(browser: Browser, live_server: LiveServer) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 800}, locale="zh-CN")
    page = phone.new_page()
    page.goto(live_server.url + "/")
    normal = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    page.click("#text-size")
    page.goto(live_server.url + "/")
    large = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert large >= normal * 1.2, (normal, large)
    phone.close()


def test_the_audit_log_filters_by_the_labels_it_shows(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_server, "admin")
    page.goto(live_server.url + "/admin/audit")
    shown = page.locator("table.audit tbody td:nth-child(4)").all_inner_texts()
    assert "提交审核" in shown, shown  # the demo's notices were submitted
    page.select_option("#action", label="提交审核")
    page.click(".filters button[type=submit]")
    actions = set(page.locator("table.audit tbody td:nth-child(4)").all_inner_texts())
    assert actions == {"提交审核"}, actions
    states = page.locator("table.audit tbody td.state").all_inner_texts()
    assert states and all(re.fullmatch(r"[^a-z]*", s) for s in states), states  # no raw keys
    context.close()
