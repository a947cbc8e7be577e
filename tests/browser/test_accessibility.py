"""Accessibility and readability checked by a tool: axe-core (axe-playwright-python) finds no
serious or critical violation on the pages residents and editors use most, and the admin's
body text is at least 14 px with muted text at 4.5:1 contrast or more."""

from __future__ import annotations

import json

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from tests.browser.test_main_path import log_in
from tests.live import LiveServer

pytestmark = pytest.mark.browser

SERIOUS = ("serious", "critical")


def _violations(page: Page) -> list[dict[str, object]]:
    results = Axe().run(page)
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:4]}
        for v in results.response["violations"] if v["impact"] in SERIOUS
    ]


def _first_published(live_server: LiveServer) -> tuple[str, int]:
    out = live_server.run_python(
        "from server.models import Notice, NoticeStatus\n"
        "from server.extensions import db\n"
        "n = db.session.scalars(db.select(Notice).where(Notice.status =="
        " NoticeStatus.PUBLISHED).order_by(Notice.id)).first()\n"
        "print(n.code, n.id)"
    )
    code, notice_id = out.split()[-2:]
    return code, int(notice_id)


def test_residents_pages_have_no_serious_violations(
    browser: Browser, live_server: LiveServer
) -> None:
    code, _id = _first_published(live_server)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                has_touch=True, locale="zh-CN")
    page = phone.new_page()
    found = {}
    for path in ("/", f"/n/{code}", f"/n/{code}#feedback"):
        page.goto(live_server.url + path)
        found[path] = _violations(page)
    phone.close()
    assert all(v == [] for v in found.values()), json.dumps(found, ensure_ascii=False, indent=1)


ADMIN_PAGES = ["/admin/", "/admin/dashboard", "/admin/notices/new", "/admin/review",
               "/admin/notices", "/admin/notices/{id}"]


def test_admin_pages_have_no_serious_violations_and_read_well(
    browser: Browser, live_server: LiveServer
) -> None:
    _code, notice_id = _first_published(live_server)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_server, "admin")
    found = {}
    small: dict[str, list[str]] = {}
    for path in ADMIN_PAGES:
        page.goto(live_server.url + path.format(id=notice_id))
        found[path] = _violations(page)
        # Text people read (not badges, counters or the footer) at 14 px at least.
        small[path] = page.evaluate("""() => {
            const out = [];
            const read = 'main p, main td, main li, main label, main dd, main dt, '
                + 'main .hint, main .muted';
            for (const el of document.querySelectorAll(read)) {
                if (!el.offsetParent || !el.innerText.trim()) continue;
                const size = parseFloat(getComputedStyle(el).fontSize);
                if (size < 14) out.push(el.tagName + '.' + el.className + ' ' + size
                                        + 'px: ' + el.innerText.trim().slice(0, 30));
            }
            return out.slice(0, 8);
        }""")
    context.close()
    assert all(v == [] for v in found.values()), json.dumps(found, ensure_ascii=False, indent=1)
    assert all(v == [] for v in small.values()), json.dumps(small, ensure_ascii=False, indent=1)


def test_muted_text_contrasts_at_least_four_and_a_half_to_one(
    browser: Browser, live_server: LiveServer
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    log_in(page, live_server, "admin")
    ratio = page.evaluate("""() => {
        const probe = document.createElement('span');
        probe.className = 'muted';
        document.querySelector('main').appendChild(probe);
        const parse = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = rgb => {
            const [r, g, b] = rgb.map(v => {
                v /= 255;
                return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const fg = lum(parse(getComputedStyle(probe).color));
        const bgs = ['#ffffff', getComputedStyle(document.body).backgroundColor];
        return Math.min(...bgs.map(bg => {
            const b = lum(bg.startsWith('#') ? [255, 255, 255] : parse(bg));
            return (Math.max(fg, b) + 0.05) / (Math.min(fg, b) + 0.05);
        }));
    }""")
    context.close()
    assert ratio >= 4.5, ratio
