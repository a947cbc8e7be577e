"""The residents' side: /n/<code> in every state, scans per screen, the public JSON, the app
bridge, the QR code, pictures, and the feedback form with its spam defences."""

from __future__ import annotations

import io
import re
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import zxingcpp
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import select
from werkzeug.test import TestResponse

from server.extensions import db
from server.models import Feedback, Image, Notice, ScanEvent
from server.models.base import utcnow
from server.public import views
from server.services import feedback, images, notices, scans
from server.services.notices import NoticeInput
from tests.conftest import World, csrf_token

FINANCE = """十月财务收支公开如下。

| 项目 | 收入（元） | 支出（元） |
| --- | ---: | ---: |
| 集体土地租赁收入 | 42,000.00 | |
| 路灯电费 | | 1,236.80 |
"""
SENT = "Received. The village committee will answer within 10 days."


@pytest.fixture
def en(client: FlaskClient) -> FlaskClient:
    """The client reading in English, so assertions do not depend on the zh catalog."""
    client.set_cookie("lang", "en")
    return client


def publish(world: World, **kw: object) -> Notice:
    data = {
        "title": "前王庄村2026年10月财务收支公开",
        "body": FINANCE,
        "category": "finance",
        "targets": ["V11"],
        "expire_at": utcnow() + timedelta(days=30),
    }
    data.update(kw)
    notice = notices.create(world.village_editor, NoticeInput(**data))  # type: ignore[arg-type]
    notices.submit(world.village_editor, notice)
    notices.approve(world.village_reviewer, notice)
    return notices.publish(world.village_editor, notice)


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def view_events(notice: Notice) -> list[ScanEvent]:
    return list(
        db.session.scalars(
            select(ScanEvent).where(ScanEvent.notice_id == notice.id, ScanEvent.kind == "view")
        )
    )


# --- the page in each state ------------------------------------------------------------------


def test_published_page_shows_the_notice(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    html = page(en, f"/n/{notice.code}")
    assert "前王庄村2026年10月财务收支公开" in html
    assert "清源县 · 柳河镇 · 前王庄村" in re.sub(r"<[^>]+>", "", html)  # the region's full name
    assert "Finances" in html or "财务公开" in html  # the category badge
    assert 'style="background:#2e7d32;color:#fff"' in html
    assert '<div class="table-wrap' in html and "1,236.80" in html
    assert "Valid until" in html and "This notice has expired" not in html
    assert notice.code in html
    assert "<script" not in html  # the page works without JavaScript
    assert 'href="/p/static/public.css"' in html


def test_page_in_chinese_by_default(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    html = page(client, f"/n/{notice.code}")
    assert '<html lang="zh-CN">' in html
    assert "财务公开" in html  # the category's Chinese name
    assert "年" in html  # dates in Chinese (2026年11月5日)


def test_page_headers_forbid_scripts_and_framing(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = client.get(f"/n/{notice.code}")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "no-cache" in response.headers["Cache-Control"]


def test_expired_by_time_before_the_scheduler_ran(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    assert notice.live_revision is not None
    notice.live_revision.expire_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert notice.status == "published"  # the scheduler has not run
    html = page(en, f"/n/{notice.code}")
    assert "This notice has expired" in html
    assert "It expired on" in html
    assert "1,236.80" in html  # the content stays readable


def test_expired_by_the_scheduler(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    notices.run_schedule(now=utcnow() + timedelta(days=31))
    assert notice.status == "expired"
    html = page(en, f"/n/{notice.code}")
    assert "This notice has expired" in html and "1,236.80" in html


def test_withdrawn_page_says_when_and_why(en: FlaskClient, world: World) -> None:
    notice = publish(world, body="要撤下的正文内容")
    notices.withdraw(world.village_editor, notice, "数据有误，核对后重新公开。")
    html = page(en, f"/n/{notice.code}")  # 200, not a 404
    assert "This notice was withdrawn" in html
    assert "数据有误，核对后重新公开。" in html
    assert "It was withdrawn on" in html
    assert "要撤下的正文内容" not in html
    assert 'name="body"' not in html  # no question form on a withdrawn notice


@pytest.mark.parametrize("when", ["draft", "submitted", "scheduled"])
def test_unpublished_notice_is_a_friendly_404(en: FlaskClient, world: World, when: str) -> None:
    data = NoticeInput(title="草稿标题", body="草稿正文", category="village", targets=["V11"])
    if when == "scheduled":
        data.publish_at = utcnow() + timedelta(days=1)
    notice = notices.create(world.village_editor, data)
    if when != "draft":
        notices.submit(world.village_editor, notice)
    if when == "scheduled":
        notices.approve(world.village_reviewer, notice)  # releases it for its time
        assert notice.status == "scheduled"
    html = page(en, f"/n/{notice.code}", 404)
    assert "草稿标题" not in html and "草稿正文" not in html
    assert "No published notice has the code" in html
    assert view_events(notice) == []


@pytest.mark.parametrize("code", ["zzzzzz", "a.b", "x" * 40, "%3Cb%3E"])
def test_unknown_code_is_a_friendly_404_page(en: FlaskClient, world: World, code: str) -> None:
    response = en.get(f"/n/{code}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Not found" in html
    assert 'name="code"' in html  # a box to type the code again
    assert "<b>" not in html


# --- scans per screen ------------------------------------------------------------------------


def test_views_are_counted_per_screen_once_per_phone(client: FlaskClient, world: World) -> None:
    from server.services import screens as screen_service

    notice = publish(world)
    one, _t = screen_service.provision(None, world.village, "一号屏")
    two, _t = screen_service.provision(None, world.village, "二号屏")

    def scan(url: str, phone: str) -> None:
        assert client.get(url, headers={"User-Agent": phone}).status_code == 200

    scan(f"/n/{notice.code}?s={one.code}", "phone A")
    scan(f"/n/{notice.code}?s={one.code}", "phone A")  # a reload: the same scan
    scan(f"/n/{notice.code}?s={one.code}", "phone B")
    scan(f"/n/{notice.code}?s={two.code}", "phone A")
    scan(f"/n/{notice.code}", "phone A")  # a shared link, no screen
    scan(f"/n/{notice.code}", "phone A")
    assert sorted(scans.by_screen(notice)) == sorted([(one.code, 2), (two.code, 1)])
    assert scans.counts(notice)["view"] == 4
    # Half an hour later the same phone scanning again is a new scan.
    db.session.execute(ScanEvent.__table__.update().values(at=utcnow() - timedelta(minutes=31)))
    db.session.commit()
    scan(f"/n/{notice.code}?s={one.code}", "phone A")
    assert scans.counts(notice)["view"] == 5


@pytest.mark.parametrize("bad", ["a b", "<script>", "x" * 17, "ab", "scr-01", "scr01'--",
                                 "NoSuch1"])
def test_a_scan_naming_no_screen_counts_nothing(client: FlaskClient, world: World,
                                                bad: str) -> None:
    notice = publish(world)
    response = client.get(f"/n/{notice.code}", query_string={"s": bad})
    assert response.status_code == 200  # the resident still reads the notice
    assert view_events(notice) == []
    assert scans.by_screen(notice) == []


# --- the public JSON ---------------------------------------------------------------------------


def test_json_for_the_app(client: FlaskClient, world: World) -> None:
    pic = _upload(world)
    notice = publish(world, image_ids=[pic.id])
    item = feedback.submit(notice, body="路灯电费为什么高？", contact="13800000000")
    feedback.answer(world.village_editor, item, "新装了四盏路灯。")
    feedback.submit(notice, body="还没有答复的问题", client_hash="x")
    response = client.get(f"/n/{notice.code}.json")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    data = response.get_json()
    assert data["code"] == notice.code
    assert data["url"] == f"http://cp.test/n/{notice.code}"
    assert data["state"] == "published"
    assert data["category"] == {"key": "finance", "name": "财务公开"}
    assert data["title"] == "前王庄村2026年10月财务收支公开"
    assert data["body"] == notice.live_revision.body  # type: ignore[union-attr]
    assert "| 路灯电费 | | 1,236.80 |" in data["body"]
    assert '<div class="table-wrap' in data["body_html"]
    assert data["regions"] == [
        {"code": "V11", "name": "前王庄村", "full_name": "清源县 · 柳河镇 · 前王庄村"}
    ]
    assert data["published_at"].endswith("Z") and data["expire_at"].endswith("Z")
    assert data["images"] == [f"http://cp.test/media/{pic.filename}"]
    assert data["questions"] == [
        {
            "question": "路灯电费为什么高？",
            "answer": "新装了四盏路灯。",
            "answered_at": data["questions"][0]["answered_at"],
        }
    ]
    assert "13800000000" not in response.get_data(as_text=True)


def test_json_of_a_withdrawn_notice_has_the_reason_and_no_body(
    client: FlaskClient, world: World
) -> None:
    notice = publish(world)
    notices.withdraw(world.village_editor, notice, "数据有误")
    data = client.get(f"/n/{notice.code}.json").get_json()
    assert data["state"] == "withdrawn"
    assert data["reason"] == "数据有误"
    assert "body" not in data and "body_html" not in data and "title" not in data


def test_json_of_an_expired_notice(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    assert notice.live_revision is not None
    notice.live_revision.expire_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    data = client.get(f"/n/{notice.code}.json").get_json()
    assert data["state"] == "expired" and data["title"]


def test_json_of_unknown_or_draft_is_a_json_404(client: FlaskClient, world: World) -> None:
    draft = notices.create(
        world.village_editor,
        NoticeInput(title="草稿", body="正文", category="village", targets=["V11"]),
    )
    for code in ("zzzzzz", draft.code):
        response = client.get(f"/n/{code}.json")
        assert response.status_code == 404
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.get_json()["error"]["status"] == 404


# --- the bridge to the county's app ------------------------------------------------------------


def test_no_app_buttons_when_not_configured(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    html = page(client, f"/n/{notice.code}")
    assert f"/n/{notice.code}/open" not in html and f"/n/{notice.code}/app" not in html
    assert client.get(f"/n/{notice.code}/open").status_code == 404
    assert client.get(f"/n/{notice.code}/app").status_code == 404
    assert scans.counts(notice)["app_open"] == 0


def test_open_in_app_and_download_are_counted(app: Flask, en: FlaskClient, world: World) -> None:
    app.config.update(
        APP_NAME="河东",
        APP_DEEPLINK_TEMPLATE="hedong://notice/{code}",
        APP_DOWNLOAD_URL="https://app.example.cn/download",
    )
    from server.services import screens as screen_service

    notice = publish(world)
    screen, _t = screen_service.provision(None, world.village, "村口屏")
    html = page(en, f"/n/{notice.code}?s={screen.code}")
    assert "Open in 河东" in html and "Download 河东" in html
    opened = en.get(f"/n/{notice.code}/open?s={screen.code}")
    assert opened.status_code == 302
    assert opened.headers["Location"] == f"hedong://notice/{notice.code}"
    download = en.get(f"/n/{notice.code}/app")
    assert download.status_code == 302
    assert download.headers["Location"] == "https://app.example.cn/download"
    counts = scans.counts(notice)
    assert counts["app_open"] == 1 and counts["app_download"] == 1 and counts["view"] == 1


@pytest.mark.parametrize(
    ("template", "download"),
    [
        ("javascript:alert('{code}')", "javascript:alert(1)"),
        ("hedong://notice/", "ftp://example.cn/app.apk"),
        ("data:text/html,{code}", "//example.cn/app"),
    ],
)
def test_unsafe_app_links_are_not_offered(
    app: Flask, client: FlaskClient, world: World, template: str, download: str
) -> None:
    app.config.update(APP_DEEPLINK_TEMPLATE=template, APP_DOWNLOAD_URL=download)
    notice = publish(world)
    html = page(client, f"/n/{notice.code}")
    assert "javascript:" not in html and f"/n/{notice.code}/open" not in html
    assert client.get(f"/n/{notice.code}/open").status_code == 404
    assert client.get(f"/n/{notice.code}/app").status_code == 404


def test_deep_link_quotes_the_code(app: Flask, world: World) -> None:
    app.config["APP_DEEPLINK_TEMPLATE"] = "hedong://notice?c={code}"
    assert views._deep_link("a&b=c/d") == "hedong://notice?c=a%26b%3Dc%2Fd"


# --- the QR code -------------------------------------------------------------------------------


def _decode(png: bytes) -> list[str]:
    with PILImage.open(io.BytesIO(png)) as img:
        return [r.text for r in zxingcpp.read_barcodes(img.convert("L"))]


def test_qr_png_decodes_to_the_notice_url(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = client.get(f"/n/{notice.code}/qr.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "max-age" in response.headers["Cache-Control"]
    assert _decode(response.data) == [f"http://cp.test/n/{notice.code}"]
    with_screen = client.get(f"/n/{notice.code}/qr.png?s=scr01&scale=5")
    assert _decode(with_screen.data) == [f"http://cp.test/n/{notice.code}?s=scr01"]
    bad_screen = client.get(f"/n/{notice.code}/qr.png?s=<x>")
    assert _decode(bad_screen.data) == [f"http://cp.test/n/{notice.code}"]


def test_qr_png_scale_is_bounded(client: FlaskClient, world: World) -> None:
    notice = publish(world)

    def width(query: str) -> int:
        response = client.get(f"/n/{notice.code}/qr.png{query}")
        assert response.status_code == 200
        with PILImage.open(io.BytesIO(response.data)) as img:
            return img.width

    one = width("?scale=1")
    assert width("?scale=3") == 3 * one
    assert width("?scale=100000") == views.QR_SCALE_MAX * one
    assert width("?scale=-5") == one
    assert width("?scale=abc") == views.QR_SCALE_DEFAULT * one


def test_qr_svg_is_valid_xml(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = client.get(f"/n/{notice.code}/qr.svg?s=scr01")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert ET.fromstring(response.data).tag == "{http://www.w3.org/2000/svg}svg"


def test_printed_qr_codes_carry_the_code_to_type_under_them(
    client: FlaskClient, world: World
) -> None:
    notice = publish(world)
    svg = ET.fromstring(client.get(f"/n/{notice.code}/qr.svg").data)
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == [f"编码 {notice.code}"]
    png = client.get(f"/n/{notice.code}/qr.png?scale=10").data
    with PILImage.open(io.BytesIO(png)) as img:
        gray = img.convert("L")
        # The code's symbol is square (its quiet zone included); the label sits in a band below.
        band = gray.crop((0, gray.width, gray.width, gray.height))
        assert band.height > 20 and band.getextrema()[0] < 64, "no text under the code"
    assert _decode(png) == [f"http://cp.test/n/{notice.code}"]


def test_qr_of_an_unknown_code_is_404(client: FlaskClient, world: World) -> None:
    assert client.get("/n/zzzzzz/qr.png").status_code == 404
    assert client.get("/n/zzzzzz/qr.svg").status_code == 404


# --- pictures ----------------------------------------------------------------------------------


def _upload(world: World) -> Image:
    buf = io.BytesIO()
    PILImage.new("RGB", (40, 30), (200, 30, 30)).save(buf, "PNG")
    buf.seek(0)
    return images.save_upload(world.village_editor, buf, "photo.png")


def test_media_serves_an_uploaded_picture(client: FlaskClient, world: World) -> None:
    pic = _upload(world)
    notice = publish(world, image_ids=[pic.id])
    html = page(client, f"/n/{notice.code}")
    assert f'src="/media/{pic.filename}"' in html
    response = client.get(f"/media/{pic.filename}")
    assert response.status_code == 200
    assert response.mimetype == pic.mime
    assert response.data == images.path_of(pic).read_bytes()
    assert "max-age=31536000" in response.headers["Cache-Control"]
    response.close()


@pytest.mark.parametrize(
    "path",
    [
        "/media/nope.jpg",
        "/media/stray.png",
        "/media/../secret_key",
        "/media/..%2Fsecret_key",
        "/media/%2e%2e%2fcunping.db",
    ],
)
def test_media_refuses_unknown_names(
    app: Flask, client: FlaskClient, world: World, path: str
) -> None:
    (Path(app.config["UPLOAD_FOLDER"]) / "stray.png").write_bytes(b"not in the database")
    response = client.get(path)
    assert response.status_code == 404
    assert b"not in the database" not in response.data


# --- feedback ----------------------------------------------------------------------------------


def _post(
    client: FlaskClient,
    notice: Notice,
    body: str,
    *,
    age: float = 10,
    token: str | None = None,
    query: str = "",
    **fields: str,
) -> TestResponse:
    csrf = csrf_token(client, f"/n/{notice.code}")
    data = {
        "csrf_token": csrf,
        "t": token if token is not None else views.form_token(notice.code, time.time() - age),
        "body": body,
        "name": "",
        "contact": "",
        "website": "",
    }
    data.update(fields)
    return client.post(f"/n/{notice.code}/feedback{query}", data=data)


def stored(notice: Notice) -> list[Feedback]:
    return list(db.session.scalars(select(Feedback).where(Feedback.notice_id == notice.id)))


def test_feedback_success_redirects_with_a_clear_message(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = _post(
        en,
        notice,
        "路灯电费比上月高，是什么原因？",
        name="王大爷",
        contact="13800000000",
        query="?s=scr01",
    )
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"/n/{notice.code}") and "s=scr01" in location
    [item] = stored(notice)
    assert item.body == "路灯电费比上月高，是什么原因？"
    assert item.name == "王大爷" and item.contact == "13800000000"
    assert item.screen_code == "scr01" and len(item.client_hash) == 64
    views_before = scans.counts(notice)["view"]
    html = page(en, location)
    assert SENT in html
    assert scans.counts(notice)["view"] == views_before  # the redirect is not a new scan
    # An open question is not public, and the contact never is.
    assert "路灯电费比上月高" not in html and "13800000000" not in html
    assert SENT not in page(en, f"/n/{notice.code}")  # the message shows once


@pytest.mark.parametrize(
    ("body", "message"),
    [("太短了", "Please write at least 5 characters."), ("长" * 501, "At most 500 characters.")],
)
def test_feedback_length_errors_keep_the_typed_text(
    en: FlaskClient, world: World, body: str, message: str
) -> None:
    notice = publish(world)
    response = _post(en, notice, body, name="李四", contact="村东头")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert message in html
    assert f">{body}</textarea>" in html
    assert 'value="李四"' in html and 'value="村东头"' in html
    assert stored(notice) == []


def test_feedback_honeypot_stores_nothing(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = _post(en, notice, "买便宜药请联系我们的网站", website="http://spam.example")
    assert response.status_code == 303  # looks fine to a bot
    assert stored(notice) == []


def test_feedback_sent_too_fast_is_refused(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = _post(en, notice, "这个问题发得太快了", age=0)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "That was very fast" in html and ">这个问题发得太快了</textarea>" in html
    assert stored(notice) == []


@pytest.mark.parametrize("kind", ["old", "forged", "other-notice", "missing"])
def test_feedback_with_a_bad_time_token_is_refused(
    en: FlaskClient, world: World, kind: str
) -> None:
    notice = publish(world)
    token = {
        "old": views.form_token(notice.code, time.time() - 2 * 86400),
        "forged": views.form_token(notice.code, time.time() - 10)[:-3] + "abc",
        "other-notice": views.form_token("other1", time.time() - 10),
        "missing": "",
    }[kind]
    response = _post(en, notice, "一个正常长度的问题", token=token)
    assert response.status_code == 422
    assert "The form has expired" in response.get_data(as_text=True)
    assert stored(notice) == []


def test_feedback_without_csrf_is_refused(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = en.post(
        f"/n/{notice.code}/feedback",
        data={"t": views.form_token(notice.code, time.time() - 10), "body": "没有令牌的问题"},
    )
    assert response.status_code == 400
    assert stored(notice) == []


def test_feedback_duplicate_is_refused(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    assert _post(en, notice, "同一个问题问两遍").status_code == 303
    again = _post(en, notice, "同一个问题问两遍")
    assert again.status_code == 422
    assert "already sent this question" in again.get_data(as_text=True)
    assert len(stored(notice)) == 1


def test_feedback_is_rate_limited_with_a_friendly_page(
    app: Flask, en: FlaskClient, world: World
) -> None:
    app.config["FEEDBACK_RATE_LIMIT"] = "2 per hour"
    notice = publish(world)
    # Fixing a too-short question is not spam: it does not use up the limit.
    assert _post(en, notice, "短").status_code == 422
    assert _post(en, notice, "第一个问题：电费").status_code == 303
    assert _post(en, notice, "第二个问题：道路").status_code == 303
    limited = _post(en, notice, "第三个问题：补贴")
    assert limited.status_code == 429
    html = limited.get_data(as_text=True)
    assert "Too many attempts" in html and "<html" in html
    assert len(stored(notice)) == 2


def test_feedback_on_a_withdrawn_notice_is_refused(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    token = views.form_token(notice.code, time.time() - 10)
    csrf = csrf_token(en, f"/n/{notice.code}")
    notices.withdraw(world.village_editor, notice, "撤回")
    response = en.post(
        f"/n/{notice.code}/feedback", data={"csrf_token": csrf, "t": token, "body": "还能提问吗？"}
    )
    assert response.status_code == 422
    assert stored(notice) == []


def test_answered_questions_show_with_their_answers(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    item = feedback.submit(
        notice, body="道路维修的300米是从哪到哪？", name="村民甲", contact="13900000000"
    )
    feedback.answer(world.village_editor, item, "从村东桥头到小学门口。")
    feedback.submit(notice, body="尚未答复的问题内容", client_hash="c2")
    html = page(en, f"/n/{notice.code}")
    assert "道路维修的300米是从哪到哪？" in html and "从村东桥头到小学门口。" in html
    assert "村民甲" in html
    assert "13900000000" not in html
    assert "尚未答复的问题内容" not in html


# --- hostile text is shown inert ------------------------------------------------------------


def test_html_in_title_body_and_feedback_is_inert(en: FlaskClient, world: World) -> None:
    notice = publish(
        world,
        title="<script>alert(1)</script>通知",
        body=(
            '<script>alert(2)</script>\n\n<img src=x onerror="alert(3)">\n\n'
            "[点我](javascript:alert(4))"
        ),
    )
    item = feedback.submit(notice, body="<script>alert(5)</script>问题", name="<b>坏人</b>")
    feedback.answer(world.village_editor, item, "<iframe src=//evil></iframe>答复")
    html = page(en, f"/n/{notice.code}")
    assert "<script" not in html and "<img src=x" not in html and "<iframe" not in html
    assert "<b>坏人</b>" not in html
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;通知" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(5)&lt;/script&gt;问题" in html
    assert "&lt;iframe src=//evil&gt;&lt;/iframe&gt;答复" in html


def test_typed_html_is_kept_as_text_in_the_form(en: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = _post(en, notice, "</textarea><script>x</script>", age=0)
    html = response.get_data(as_text=True)
    assert "<script>x" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;x&lt;/script&gt;</textarea>" in html


# --- landing and error pages -------------------------------------------------------------------


def test_landing_page(app: Flask, en: FlaskClient, world: World) -> None:
    app.config["COUNTY_NAME"] = "清源县"
    html = page(en, "/")
    assert "清源县" in html
    assert 'href="/admin/"' in html


def test_code_box_goes_to_the_notice(client: FlaskClient, world: World) -> None:
    notice = publish(world)
    response = client.get("/n", query_string={"code": f" {notice.code} "})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/n/{notice.code}"
    assert client.get("/n", query_string={"code": "../../etc"}).status_code == 404


def test_admin_errors_use_the_same_friendly_page(en: FlaskClient, world: World) -> None:
    response = en.get("/admin/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "There is nothing at this address." in html
    assert 'href="/admin/"' in html and "public.css" in html


def test_a_feedback_form_is_sent_once(en: FlaskClient, world: World) -> None:
    """The same form token again (a replay, a bot reusing one page) is refused; a fresh form
    from the same page load works."""
    notice = publish(world)
    token = views.form_token(notice.code, time.time() - 10)
    first = _post(en, notice, "路灯什么时候修好？", token=token)
    assert first.status_code == 303
    again = _post(en, notice, "路灯到底什么时候修？", token=token)
    assert again.status_code == 422 and "already" in again.get_data(as_text=True)
    assert len(stored(notice)) == 1
    assert _post(en, notice, "村口的路灯也坏了。").status_code == 303  # a new form
    assert len(stored(notice)) == 2


def test_a_code_is_found_whatever_its_case_and_confusable_characters(
    en: FlaskClient, world: World
) -> None:
    notice = notices.create(world.village_editor, NoticeInput(
        title="码", body="正文", category="village", targets=["V11"]))
    notices.submit(world.village_editor, notice)
    notices.approve(world.village_reviewer, notice)
    notices.publish(world.village_editor, notice)
    code = notice.code
    assert code == code.lower() and not set(code) & set("01l")  # new codes: one case
    shouted = code.upper()
    resp = en.get(f"/n/{shouted}?s=ABC123")
    assert resp.status_code == 301
    assert resp.headers["Location"].endswith(f"/n/{code}?s=ABC123")
    assert en.get(f"/n/{shouted}.json").get_json()["code"] == code
    # An older mixed-case code with an o and an i in it, typed with 0 and 1 (and l for i).
    notice.code = "Ho2iKw"
    db.session.commit()
    for typed in ("ho2ikw", "H02IKW", "h02lkw", "HO21KW"):
        assert notices.get_by_code(typed) is notice, typed
    found = en.get("/n/?code=h02ikw", follow_redirects=True)
    assert found.status_code == 200 and "码" in found.get_data(as_text=True)
    assert notices.get_by_code("ho2ikx") is None
