"""The English UI is complete: every page an English-reading user opens shows no Chinese but
what people wrote (notice titles and text, names of places, people, screens and categories,
alerts' words), which the test takes from the database."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser

from tests.browser.test_main_path import log_in
from tests.live import LiveServer

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u3400-\u9fff]+")  # runs of Chinese characters
BRAND = {"村屏", "屏"}  # the product's name and mark, Chinese in every language
USER_CONTENT = """
import json
from sqlalchemy import select
from server.extensions import db
from server.models import (Alert, Category, Feedback, Notice, Region, Revision, Screen, User,
                          AuditEvent)
strings = set()
for model, columns in ((Region, ("name",)), (User, ("name",)), (Screen, ("name",)),
                       (Revision, ("title", "body", "reject_reason")),
                       (Alert, ("title", "text", "instruction", "event", "sender_name",
                                "end_reason")),
                       (Feedback, ("body", "name", "answer")), (AuditEvent, ("reason",))):
    for row in db.session.scalars(select(model)):
        for column in columns:
            value = getattr(row, column, None)
            if value:
                strings.add(str(value))
for category in db.session.scalars(select(Category)):
    if not category.name_en:  # one with an English name shows it in English
        strings.add(category.name)
for region in db.session.scalars(select(Region)):
    strings.add(region.full_name)
notice = db.session.scalars(select(Notice).where(Notice.status == "published")).first()
alert = db.session.scalars(select(Alert)).first()
screen = db.session.scalars(select(Screen)).first()
print(json.dumps({"categories": [c.name for c in db.session.scalars(select(Category))],
                  "strings": sorted(strings, key=len, reverse=True), "notice": notice.id,
                  "code": notice.code, "alert": alert.code if alert else None,
                  "screen": screen.id, "screen_code": screen.code}))
"""
ADMIN_PAGES = [
    "/admin/", "/admin/notices", "/admin/notices/{notice}", "/admin/notices/new", "/admin/review",
    "/admin/feedback", "/admin/dashboard", "/admin/dashboard/screens/{screen}", "/admin/screens",
    "/admin/stats", "/admin/cadence", "/admin/alerts", "/admin/users",
    "/admin/regions", "/admin/categories", "/admin/audit", "/admin/account",
]
PUBLIC_PAGES = ["/", "/n/{code}", "/s/{screen_code}"]
ALERT_USER_PAGES = ["/admin/", "/admin/alerts/new"]  # what an alert user sees besides


def _leftovers(text: str, corpus: str) -> list[str]:
    """Lines of `text` with a run of Chinese that no user-written string contains."""
    found = []
    for line in text.splitlines():
        runs = [r for r in CJK.findall(line) if r not in BRAND and r not in corpus]
        if runs:
            found.append(line.strip())
    return found


def test_english_pages_have_no_chinese_outside_what_people_wrote(
    browser: Browser, live_server: LiveServer
) -> None:
    data = json.loads(live_server.run_python(USER_CONTENT).strip().splitlines()[-1])
    corpus = "\n".join(data["strings"])
    categories = "\n".join(data["categories"])
    problems: dict[str, list[str]] = {}
    paths = [p.format(**data) for p in ADMIN_PAGES + PUBLIC_PAGES]
    if data["alert"]:
        paths += [f"/admin/alerts/{data['alert']}", f"/a/{data['alert']}"]
    for user, visits in (("admin", paths), ("county_alert", ALERT_USER_PAGES)):
        context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en")
        page = context.new_page()
        log_in(page, live_server, user)
        page.goto(live_server.url + "/admin/?lang=en")
        for path in visits:
            response = page.goto(live_server.url + path)
            assert response is not None and response.status == 200, path
            # The categories' own page edits both their names, Chinese and English.
            shown = corpus + categories if path == "/admin/categories" else corpus
            left = _leftovers(page.locator("body").inner_text(), shown)
            # The language switch names Chinese in Chinese, as it should.
            left = [line for line in left if not line.startswith("中文")]
            if left:
                problems[f"{user} {path}"] = left[:6]
        context.close()
    assert problems == {}, json.dumps(problems, ensure_ascii=False, indent=1)
