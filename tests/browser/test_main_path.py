"""The editors' main path in a real browser: write a notice with a finance table, submit,
approve as the village supervision committee, publish, and read it on a phone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from server.demo import PASSWORD
from tests.live import LiveServer

pytestmark = pytest.mark.browser

TITLE = "前王庄村2026年11月财务收支公开（浏览器测试）"
BODY = """前王庄村2026年11月财务收支情况公开如下，请村民监督。

| 项目 | 收入（元） | 支出（元） | 说明 |
| --- | ---: | ---: | --- |
| 上月结余 | 135,171.05 | | |
| 集体土地租赁收入 | 42,000.00 | | 村西50亩，承包人王建军，合同期五年 |
| 冬季取暖用煤采购 | | 8,640.00 | 村委会及老年活动中心，共12吨 |
| **合计** | **177,171.05** | **8,640.00** | 本月结余 **168,531.05** 元 |

**监督电话**：0539-0000000"""
CELL = "冬季取暖用煤采购"


def log_in(page: Page, server: LiveServer, username: str) -> None:
    page.goto(server.url + "/admin/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()


def log_out(page: Page) -> None:
    page.click("#logout")
    expect(page.locator("#username")).to_be_visible()


def test_write_review_publish_and_read_on_a_phone(
    browser: Browser, live_server: LiveServer, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()

    # The village committee writes the monthly finance disclosure.
    log_in(page, live_server, "qianwang_editor")
    page.goto(live_server.url + "/admin/notices/new")
    page.fill("#title", TITLE)
    page.select_option("#category", "finance")
    page.fill("#body", BODY)
    page.locator("label.check", has_text="前王庄村").locator("input[name=targets]").check()
    page.screenshot(path=str(artifacts / "admin_form.png"), full_page=True)
    page.click("#save")
    expect(page).to_have_url(re.compile(r"/admin/notices/\d+$"))
    detail_url = page.url
    expect(page.locator("h1")).to_have_text(TITLE)
    expect(page.locator(".notice-body td", has_text=CELL)).to_be_visible()
    expect(page.locator(".head-badges .badge-draft")).to_be_visible()
    page.click("button[value=submit]")
    expect(page.locator(".head-badges .badge-submitted")).to_be_visible()
    log_out(page)

    # The supervision committee reviews and approves it.
    log_in(page, live_server, "qianwang_jiandu")
    page.goto(live_server.url + "/admin/review")
    expect(page.locator(".review-head h2", has_text=TITLE)).to_be_visible()
    page.goto(detail_url)
    page.click("button[value=approve]")
    expect(page.locator(".head-badges .badge-approved")).to_be_visible()
    log_out(page)

    # The committee publishes it.
    log_in(page, live_server, "qianwang_editor")
    page.goto(detail_url)
    page.click("button[value=publish]")
    expect(page.locator(".head-badges .badge-published")).to_be_visible()
    # The residents' QR code is shown beside the notice (served by the app itself).
    page.wait_for_function(
        "() => { const img = document.querySelector('img.qr');"
        " return img && img.complete && img.naturalWidth > 0; }"
    )
    page.screenshot(path=str(artifacts / "admin_detail.png"), full_page=True)
    href = page.locator("a.public-link").get_attribute("href")
    assert href is not None and re.fullmatch(r"/n/\w+", href), href
    context.close()

    # A resident scans the code with a cheap phone.
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
    )
    resident = phone.new_page()
    response = resident.goto(live_server.url + href)
    assert response is not None and response.status == 200
    expect(resident.get_by_text(TITLE).first).to_be_visible()
    expect(resident.locator("td", has_text=CELL)).to_be_visible()
    overflow = resident.evaluate(
        "() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth})"
    )
    assert overflow["doc"] <= 362 and overflow["body"] <= 362, overflow
    # The wide finance table becomes a card per row, each amount beside its column's name,
    # the totals row framed; nothing scrolls sideways.
    wrap = resident.locator(".table-wrap.reflow").first
    expect(wrap).to_be_visible()
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    assert wrap.evaluate("el => el.getBoundingClientRect().right") <= 362
    cell = resident.locator("td", has_text="8,640.00").first
    label = cell.evaluate("el => getComputedStyle(el, '::before').content")
    assert label == '"支出（元）"', label
    expect(resident.locator("tr.total")).to_be_visible()
    resident.screenshot(path=str(artifacts / "phone_notice.png"), full_page=True)
    phone.close()
