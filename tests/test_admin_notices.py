"""The editors' notice pages through the Flask test client: forms, workflow buttons, review
queue, feedback inbox, and what happens with bad input."""

from __future__ import annotations

import io
import re
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
from werkzeug.test import TestResponse

from server.extensions import db
from server.models import NoticeStatus, RevisionState
from server.services import feedback, notices
from server.services import screens as screen_service
from server.services.notices import NoticeInput
from tests.conftest import AuthActions, World, csrf_token

FINANCE_BODY = """前王庄村2026年10月财务收支情况如下：

| 项目 | 金额（元） |
| --- | ---: |
| 路灯电费 | 1,236.80 |
| **合计** | **1,236.80** |
"""


@pytest.fixture(autouse=True)
def english(client: FlaskClient) -> None:
    """Messages in English (the zh catalogue is compiled separately)."""
    client.get("/admin/login?lang=en")


def token(client: FlaskClient) -> str:
    return csrf_token(client, "/admin/")


def html(resp: TestResponse) -> str:
    return resp.get_data(as_text=True)


def notice_form(world: World, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "2026年10月财务公开",
        "category": "finance",
        "body": FINANCE_BODY,
        "targets": [str(world.village.id)],
        "publish_at": "",
        "expire_at": "",
        "duration_s": "20",
    }
    data.update(overrides)
    return data


def create(client: FlaskClient, data: dict[str, Any]) -> TestResponse:
    data = {**data, "csrf_token": csrf_token(client, "/admin/notices/new")}
    return client.post("/admin/notices/new", data=data, content_type="multipart/form-data")


def action(client: FlaskClient, notice_id: int, name: str, **fields: Any) -> TestResponse:
    return client.post(
        f"/admin/notices/{notice_id}/{name}",
        data={"csrf_token": token(client), **fields},
        follow_redirects=True,
    )


def notice_id_from(resp: TestResponse) -> int:
    match = re.search(r"/admin/notices/(\d+)$", resp.headers["Location"])
    assert match, resp.headers.get("Location")
    return int(match.group(1))


def png_bytes(size: tuple[int, int] = (40, 30), color: str = "red") -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def service_input(world: World, **kw: Any) -> NoticeInput:
    base: dict[str, Any] = {
        "title": "村民代表会议通知",
        "body": "定于周六上午九点召开。",
        "category": "village",
        "targets": ["V11"],
    }
    base.update(kw)
    return NoticeInput(**base)


# --- access --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/notices",
        "/admin/notices/new",
        "/admin/notices/1",
        "/admin/notices/1/edit",
        "/admin/review",
        "/admin/feedback",
    ],
)
def test_pages_need_login(client: FlaskClient, world: World, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/admin/login?next=")


def test_post_without_csrf_token_is_refused(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True)
    auth.login("veditor")
    resp = client.post("/admin/notices/new", data=notice_form(world))
    assert resp.status_code == 400
    assert notices.list_notices(world.village_editor)[1] == 0
    n = notices.create(world.village_editor, service_input(world))
    resp = client.post(f"/admin/notices/{n.id}/submit", data={})
    assert resp.status_code == 400
    assert n.status == NoticeStatus.DRAFT


def test_nav_hides_what_the_user_cannot_use(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    page = html(client.get("/admin/"))
    assert "/admin/notices" in page and "/admin/feedback" in page
    assert "/admin/regions" not in page and "/admin/users" not in page
    assert "/admin/review" not in page
    auth.logout()
    auth.login("admin")
    page = html(client.get("/admin/"))
    for path in ("/admin/regions", "/admin/users", "/admin/categories", "/admin/review"):
        assert path in page


# --- creating and editing ------------------------------------------------------------------


def test_create_a_finance_notice_with_a_table(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    form = html(client.get("/admin/notices/new"))
    assert "| 项目 | 金额" in form  # the help box shows the table syntax
    assert f'value="{world.village.id}"' in form
    assert f'value="{world.other_village.id}"' not in form  # only regions the editor may target
    resp = create(
        client,
        notice_form(world, publish_at="2030-01-01T08:00", expire_at="2030-02-01T08:00",
                    duration_s="45", pinned="y"),
    )
    assert resp.status_code == 302
    nid = notice_id_from(resp)
    page = html(client.get(f"/admin/notices/{nid}"))
    assert "Saved as a draft" in page
    assert '<div class="table-wrap' in page
    assert re.search(r"<td[^>]*>路灯电费</td>", page)
    assert "<strong>合计</strong>" in page
    notice = notices.get_by_id(nid)
    rev = notice.current
    assert rev.title == "2026年10月财务公开" and rev.category.key == "finance"
    assert [r.code for r in rev.targets] == ["V11"]
    # Editors type Beijing time; the database holds naive UTC.
    assert rev.publish_at == datetime(2030, 1, 1, 0, 0)
    assert rev.expire_at == datetime(2030, 2, 1, 0, 0)
    assert rev.duration_s == 45 and rev.pinned
    assert "2030-01-01 08:00" in page  # shown in local time again
    listing = html(client.get("/admin/notices"))
    assert "2026年10月财务公开" in listing and notice.code in listing


def test_validation_keeps_everything_typed(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("teditor")
    typed = notice_form(
        world,
        title="",
        body="我写了很久的正文，**不能丢**。",
        targets=[str(world.village.id), str(world.village2.id)],
        duration_s="45",
        expire_at="2030-03-01T09:30",
        pinned="y",
    )
    resp = create(client, typed)
    assert resp.status_code == 422
    page = html(resp)
    assert "A title is required." in page
    assert "我写了很久的正文，**不能丢**。" in page
    for region in (world.village, world.village2):
        assert re.search(rf'value="{region.id}" checked', page)
    assert not re.search(rf'value="{world.town.id}" checked', page)
    assert 'value="45"' in page
    assert 'value="2030-03-01T09:30"' in page
    assert re.search(r'name="pinned"[^>]*checked|checked[^>]*name="pinned"', page)
    assert '<option selected value="finance">' in page or 'value="finance" selected' in page
    assert notices.list_notices(world.town_editor)[1] == 0


def test_expiry_before_publication_is_refused(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    resp = create(
        client,
        notice_form(world, publish_at="2030-01-02T08:00", expire_at="2030-01-01T08:00"),
    )
    assert resp.status_code == 422
    assert "The expiry must be after the publication time." in html(resp)
    resp = create(client, notice_form(world, publish_at="not a date"))
    assert resp.status_code == 422
    assert "Not a valid datetime value." in html(resp)
    assert notices.list_notices(world.village_editor)[1] == 0


def test_target_outside_the_subtree_is_refused(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("teditor")
    resp = create(client, notice_form(world, targets=[str(world.other_village.id)]))
    assert resp.status_code == 422
    page = html(resp)
    assert "Outside the regions you may publish to: 南岭村." in page
    assert "2026年10月财务公开" in page  # the title typed is still there
    assert notices.list_notices(world.town_editor)[1] == 0


def test_html_and_script_are_shown_inert(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    resp = create(
        client,
        notice_form(
            world,
            title='<script>alert("t")</script>通知',
            body='<script>alert("b")</script>\n\n<img src=x onerror=alert(1)> **粗体**',
        ),
    )
    assert resp.status_code == 302
    nid = notice_id_from(resp)
    for url in (f"/admin/notices/{nid}", "/admin/notices", "/admin/", f"/admin/notices/{nid}/edit"):
        page = html(client.get(url))
        assert "<script>alert" not in page, url
        assert "<img src=x" not in page, url
        assert "&lt;script&gt;alert" in page, url
    detail = html(client.get(f"/admin/notices/{nid}"))
    assert "<strong>粗体</strong>" in detail  # the Markdown subset still works


def test_non_image_upload_is_refused_and_nothing_is_lost(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    data = notice_form(world)
    data["images"] = [
        (io.BytesIO(b"#!/bin/sh\necho not a picture\n"), "evil.png"),
        (io.BytesIO(png_bytes()), "photo.png"),
    ]
    resp = create(client, data)
    assert resp.status_code == 422
    page = html(resp)
    assert "evil.png: The file is not a picture Cunping can read." in page
    assert "2026年10月财务公开" in page and "路灯电费" in page
    kept = re.search(r'name="kept_images" type="hidden" value="([^"]*)"', page) or re.search(
        r'id="kept_images" name="kept_images" type="hidden" value="([^"]*)"', page
    )
    assert kept is not None, "the accepted picture travels with the form"
    filenames = [f for f in kept.group(1).split(",") if f]
    assert len(filenames) == 1 and filenames[0].endswith(".jpg")
    assert notices.list_notices(world.village_editor)[1] == 0
    # Sending the form again (without the bad file) saves the notice with the good picture.
    resp = create(client, notice_form(world, kept_images=filenames[0]))
    assert resp.status_code == 302
    notice = notices.get_by_id(notice_id_from(resp))
    assert [img.filename for img in notice.current.images] == filenames
    assert f'src="/media/{filenames[0]}"' in html(client.get(f"/admin/notices/{notice.id}"))
    picture = client.get(f"/media/{filenames[0]}")
    assert picture.status_code == 200 and picture.mimetype == "image/jpeg"
    picture.close()


def test_every_problem_is_named_at_once(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    data = notice_form(world, title="", duration_s="many")
    data["images"] = [(io.BytesIO(b"GIF89a but not really"), "fake.gif")]
    resp = create(client, data)
    assert resp.status_code == 422
    page = html(resp)
    assert "fake.gif: The file is not a picture Cunping can read." in page
    assert "A title is required." in page
    assert "Not a valid integer value." in page
    assert "Display time must be" not in page  # one message per field
    assert notices.list_notices(world.village_editor)[1] == 0


def test_removing_a_picture_on_edit(client: FlaskClient, auth: AuthActions, world: World) -> None:
    auth.login("veditor")
    data = notice_form(world)
    data["images"] = [(io.BytesIO(png_bytes()), "a.png"), (io.BytesIO(png_bytes(color="blue")),
                                                            "b.png")]
    nid = notice_id_from(create(client, data))
    notice = notices.get_by_id(nid)
    first, second = [img.filename for img in notice.current.images]
    edit = html(client.get(f"/admin/notices/{nid}/edit"))
    assert first in edit and second in edit and "路灯电费" in edit
    resp = client.post(
        f"/admin/notices/{nid}/edit",
        data={**notice_form(world, kept_images=f"{first},{second}"), "remove_images": [first],
              "csrf_token": token(client)},
    )
    assert resp.status_code == 302
    assert [img.filename for img in notices.get_by_id(nid).current.images] == [second]


def test_oversized_request_gets_a_friendly_page(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    app.config["MAX_CONTENT_LENGTH"] = 50_000
    data = notice_form(world)
    data["images"] = [(io.BytesIO(b"x" * 80_000), "huge.jpg")]
    resp = create(client, data)
    assert resp.status_code == 413
    page = html(resp)
    assert "nothing was saved" in page and "smaller pictures" in page
    assert notices.list_notices(world.village_editor)[1] == 0


# --- workflow ------------------------------------------------------------------------------


def test_full_workflow_through_the_buttons(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.login("veditor")
    nid = notice_id_from(create(client, notice_form(world)))
    page = html(client.get(f"/admin/notices/{nid}"))
    assert f'action="/admin/notices/{nid}/submit"' in page
    assert f'action="/admin/notices/{nid}/approve"' not in page  # an editor does not review
    page = html(action(client, nid, "submit"))
    assert "Submitted for review." in page
    auth.logout()

    auth.login("vreviewer")
    queue = html(client.get("/admin/review"))
    assert "2026年10月财务公开" in queue and "路灯电费" in queue
    page = html(action(client, nid, "reject", reason="", revision="1"))
    assert "Say why the notice is rejected." in page
    page = html(action(client, nid, "reject", reason="合计金额与明细不符", revision="1"))
    assert "Rejected and sent back" in page
    assert notices.get_by_id(nid).status == NoticeStatus.DRAFT
    auth.logout()

    auth.login("veditor")
    page = html(client.get(f"/admin/notices/{nid}"))
    assert "合计金额与明细不符" in page  # the reason is shown to the editor
    action(client, nid, "submit")
    auth.logout()

    auth.login("vreviewer")
    page = html(action(client, nid, "approve", revision="1"))
    assert "Approved." in page
    page = html(action(client, nid, "approve", revision="1"))  # a double click
    assert "Revision 1 has already been approved." in page
    auth.logout()
    auth.login("treviewer")  # a second reviewer
    page = html(action(client, nid, "approve", revision="1"))
    assert "Revision 1 has already been approved." in page
    notice = notices.get_by_id(nid)
    assert notice.status == NoticeStatus.APPROVED
    assert [e.action for e in notices.history(notice)].count("approve") == 1
    auth.logout()

    auth.login("veditor")
    page = html(client.get(f"/admin/notices/{nid}"))
    assert f'action="/admin/notices/{nid}/publish"' in page
    page = html(action(client, nid, "publish"))
    assert "Published:" in page
    assert notices.get_by_id(nid).status == NoticeStatus.PUBLISHED
    assert f"/n/{notice.code}" in page and f"/n/{notice.code}/qr.svg" in page
    page = html(action(client, nid, "withdraw", reason=""))
    assert "Say why the notice is withdrawn." in page
    page = html(action(client, nid, "withdraw", reason="内容需更正"))
    assert "Withdrawn:" in page
    notice = notices.get_by_id(nid)
    assert notice.status == NoticeStatus.WITHDRAWN and notice.withdraw_reason == "内容需更正"
    history = html(client.get(f"/admin/notices/{nid}"))
    for text in ("submitted for review", "rejected", "approved", "published", "withdrawn",
                 "合计金额与明细不符", "内容需更正"):
        assert text in history


def test_approving_a_notice_with_a_publish_time_schedules_it(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    """Approve = release at the set time: nobody has to come back and click again."""
    n = notices.create(
        world.village_editor, service_input(world, publish_at=datetime(2099, 1, 1, 1, 0))
    )
    notices.submit(world.village_editor, n)
    auth.login("vreviewer")
    page = html(client.get(f"/admin/notices/{n.id}"))
    assert "Approve: live at 2099-01-01 09:00" in page
    assert "goes live by itself once approved" in page
    queue = html(client.get("/admin/review"))
    assert "Approve: live at 2099-01-01 09:00" in queue
    page = html(action(client, n.id, "approve", revision=1))
    assert "Approved: it goes live by itself at 2099-01-01 09:00." in page
    assert notices.get_by_id(n.id).status == NoticeStatus.SCHEDULED
    assert "Will go live at 2099-01-01 09:00." in page


def test_a_held_notice_waits_for_its_editor_and_says_when_its_time_passes(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    n = notices.create(
        world.village_editor,
        service_input(world, publish_at=datetime(2099, 1, 1, 1, 0), hold=True),
    )
    notices.submit(world.village_editor, n)
    auth.login("vreviewer")
    page = html(client.get(f"/admin/notices/{n.id}"))
    assert "After approval an editor publishes it." in page
    action(client, n.id, "approve", revision=1)
    assert notices.get_by_id(n.id).status == NoticeStatus.APPROVED
    auth.logout()
    auth.login("veditor")
    home = html(client.get("/admin/"))
    assert re.search(r'id="count-to-publish">\s*<span class="stat-num">1<', home)
    page = html(client.get(f"/admin/notices/{n.id}"))
    assert "Will go live at 2099-01-01 09:00." in page
    page = html(action(client, n.id, "publish"))
    assert "Scheduled: it goes live at 2099-01-01 09:00." in page
    assert notices.get_by_id(n.id).status == NoticeStatus.SCHEDULED


def test_a_notice_past_its_publish_time_is_shown_on_the_home_page_and_in_the_list(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    n = notices.create(
        world.village_editor,
        service_input(world, publish_at=datetime(2099, 1, 1, 1, 0), hold=True),
    )
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    rev = notices.get_by_id(n.id).pending_revision
    rev.publish_at = datetime(2020, 1, 1)  # the time passed while it waited for its editor
    db.session.commit()
    for who in ("veditor", "vreviewer"):
        auth.logout()
        auth.login(who)
        home = html(client.get("/admin/"))
        assert re.search(r'id="count-overdue">\s*<span class="stat-num">1<', home), who
        listing = html(client.get("/admin/notices?status=overdue"))
        assert n.code in listing and "Past its publish time" in listing
    auth.logout()
    auth.login("veditor")
    page = html(client.get(f"/admin/notices/{n.id}"))
    assert "has passed and it is not live yet" in page


def test_approval_after_the_publish_time_puts_it_live_at_once(world: World) -> None:
    n = notices.create(
        world.village_editor, service_input(world, publish_at=datetime(2020, 1, 1))
    )
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    n = notices.get_by_id(n.id)
    assert n.status == NoticeStatus.PUBLISHED and n.live_revision is not None
    actions = [e.action for e in notices.history(n)]
    assert "approve" in actions and "publish" in actions


def test_editing_a_live_notice_shows_both_versions(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    n = notices.create(world.village_editor, service_input(world))
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    notices.publish(world.village_editor, n)
    auth.login("veditor")
    resp = client.post(
        f"/admin/notices/{n.id}/edit",
        data={**notice_form(world, title="村民代表会议通知（更正）", body="改在周日。",
                            category="village"), "csrf_token": token(client)},
        follow_redirects=True,
    )
    page = html(resp)
    assert "The published version stays on the screens" in page
    assert "On the screens now" in page and "New revision" in page
    assert "定于周六上午九点召开。" in page and "改在周日。" in page
    action(client, n.id, "submit")
    listing = html(client.get("/admin/notices?status=pending_review"))
    assert "edit pending review" in listing and "村民代表会议通知（更正）" in listing
    notice = notices.get_by_id(n.id)
    assert notice.live_revision is not None and notice.live_revision.title == "村民代表会议通知"
    assert notice.pending_revision is not None
    assert notice.pending_revision.state == RevisionState.SUBMITTED


def test_review_queue_approves_and_comes_back(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    n = notices.create(world.village_editor, service_input(world))
    notices.submit(world.village_editor, n)
    auth.login("vreviewer")
    resp = client.post(
        f"/admin/notices/{n.id}/approve",
        data={"csrf_token": token(client), "revision": "1", "back": "review"},
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/review"
    page = html(client.get("/admin/review"))
    assert "Approved." in page and "Nothing is waiting for your review." in page


def test_town_editor_cannot_see_another_towns_notice(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    other = notices.create(
        world.county_editor, service_input(world, title="南岭村内部通知", targets=["V21"])
    )
    auth.login("teditor")
    for url in (f"/admin/notices/{other.id}", f"/admin/notices/{other.id}/edit"):
        resp = client.get(url)
        assert resp.status_code == 403, url
        page = html(resp)
        assert "outside your regions" in page and "南岭村内部通知" not in page
        assert "Back to the notices" in page  # a clean admin page, not a crash
    resp = client.post(f"/admin/notices/{other.id}/submit", data={"csrf_token": token(client)})
    assert resp.status_code == 403
    assert notices.get_by_id(other.id).status == NoticeStatus.DRAFT
    assert "南岭村内部通知" not in html(client.get("/admin/notices"))
    assert client.get("/admin/notices/99999").status_code == 404


def test_list_filters(client: FlaskClient, auth: AuthActions, world: World) -> None:
    a = notices.create(world.town_editor, service_input(world, title="甲通知", targets=["V11"]))
    notices.create(
        world.town_editor,
        service_input(world, title="乙通知", targets=["V12"], category="finance"),
    )
    notices.submit(world.town_editor, a)
    auth.login("teditor")
    page = html(client.get("/admin/notices"))
    assert "甲通知" in page and "乙通知" in page
    assert f'value="{world.village.id}"' in page  # region options from the user's tree
    page = html(client.get("/admin/notices?status=submitted"))
    assert "甲通知" in page and "乙通知" not in page
    page = html(client.get("/admin/notices?category=finance"))
    assert "甲通知" not in page and "乙通知" in page
    page = html(client.get(f"/admin/notices?region={world.village2.id}"))
    assert "甲通知" not in page and "乙通知" in page
    page = html(client.get("/admin/notices?q=甲"))
    assert "甲通知" in page and "乙通知" not in page
    assert client.get("/admin/notices?status=bogus&page=x").status_code == 200


def test_dashboard_counts(client: FlaskClient, auth: AuthActions, world: World) -> None:
    notices.create(world.village_editor, service_input(world))
    n = notices.create(world.village_editor, service_input(world, title="待审"))
    notices.submit(world.village_editor, n)
    auth.login("veditor")
    page = html(client.get("/admin/"))
    assert re.search(r'stat-num">1</span><span class="stat-label">My drafts', page)
    auth.logout()
    auth.login("vreviewer")
    page = html(client.get("/admin/"))
    assert re.search(r'stat-num">1</span><span class="stat-label">Awaiting my review', page)


# --- feedback ------------------------------------------------------------------------------


def test_feedback_answer_and_hide(client: FlaskClient, auth: AuthActions, world: World) -> None:
    n = notices.create(world.village_editor, service_input(world))
    notices.submit(world.village_editor, n)
    notices.approve(world.village_reviewer, n)
    notices.publish(world.village_editor, n)
    square, _token = screen_service.provision(None, world.village, "村委会门口屏")
    q1 = feedback.submit(n, body="会议在哪里开？<b>急</b>", name="王大爷", contact="13800000000",
                         screen_code=square.code)
    q2 = feedback.submit(n, body="买便宜药请加微信", name="广告")
    auth.login("veditor")
    page = html(client.get("/admin/feedback"))
    assert "会议在哪里开？&lt;b&gt;急&lt;/b&gt;" in page
    assert "13800000000" in page and "村民代表会议通知" in page
    # The screen it was scanned at by its name, not its code.
    assert "村委会门口屏" in page and square.code not in page
    resp = client.post(
        f"/admin/feedback/{q1.id}/answer",
        data={"csrf_token": token(client), "answer": "", "tab": "open"},
        follow_redirects=True,
    )
    assert "Write an answer." in html(resp)
    resp = client.post(
        f"/admin/feedback/{q1.id}/answer",
        data={"csrf_token": token(client), "answer": "在村委会二楼。", "tab": "open"},
        follow_redirects=True,
    )
    assert "Answered." in html(resp)
    assert [f.answer for f in feedback.public_for(n)] == ["在村委会二楼。"]
    resp = client.post(
        f"/admin/feedback/{q2.id}/hide",
        data={"csrf_token": token(client), "reason": "广告", "tab": "open"},
        follow_redirects=True,
    )
    assert "Hidden." in html(resp)
    assert "No questions here." in html(client.get("/admin/feedback?tab=open"))
    assert "在村委会二楼。" in html(client.get("/admin/feedback?tab=answered"))
    assert "买便宜药请加微信" in html(client.get("/admin/feedback?tab=hidden"))
    auth.logout()
    auth.login("treviewer")  # reviewers do not answer; the question is not theirs to touch
    resp = client.post(
        f"/admin/feedback/{q1.id}/answer",
        data={"csrf_token": token(client), "answer": "改一下"},
    )
    assert resp.status_code == 404
    assert feedback.public_for(n)[0].answer == "在村委会二楼。"
