"""No input makes a 500 (docs/security.md): numbers too large for the database, dates with no
UTC equivalent, JSON nested thousands deep, absurd page numbers — in the API, the admin, CAP
import and the routes' own ids — each a clear 4xx, and nothing saved."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.extensions import db
from server.models import Notice
from server.services.errors import ValidationError
from tests.conftest import AuthActions, World
from tests.test_api_alerts import auth_for

HUGE = 10**23
DATES = ["9999-12-31T23:59:59-08:00", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59",
         "0001-01-01T00:00:00"]


def api(client: FlaskClient, world: World, method: str, url: str, body: Any = None,
        raw: bytes | None = None) -> Any:
    headers = {**auth_for(world.county_editor), "Content-Type": "application/json"}
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    return client.open(f"/api/v1{url}", method=method, data=data, headers=headers)


def notice_body(**fields: Any) -> dict[str, Any]:
    return {"title": "通知", "body": "正文", "category": "notice", "targets": ["V11"], **fields}


@pytest.mark.parametrize("fields", [
    {"category": HUGE}, {"category": -HUGE}, {"targets": [HUGE]}, {"duration_s": HUGE},
    *({"publish_at": d} for d in DATES), *({"expire_at": d} for d in DATES),
])
def test_the_api_refuses_out_of_range_values_with_a_4xx(
    client: FlaskClient, world: World, fields: dict[str, Any]
) -> None:
    r = api(client, world, "POST", "/notices", notice_body(**fields))
    assert 400 <= r.status_code < 500, (fields, r.status_code, r.get_data(as_text=True)[:300])
    assert db.session.query(Notice).count() == 0


def test_json_nested_thousands_deep_is_a_400(client: FlaskClient, world: World) -> None:
    deep = b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = api(client, world, "POST", "/notices", raw=deep)
    assert r.status_code == 400


@pytest.mark.parametrize("url", [
    "/notices?page=1e39", f"/notices?page={10**39}", f"/notices?per_page={10**30}",
    "/notices?page=-1", f"/notices/{10**30}", f"/notices/{HUGE}/submit", "/alerts?page=1e39",
    f"/regions/{'x' * 5000}", "/notices?since=9999-12-31T23:59:59-08:00",
])
def test_api_urls_with_hostile_values_are_4xx(client: FlaskClient, world: World,
                                                url: str) -> None:
    method = "POST" if url.endswith("/submit") else "GET"
    r = api(client, world, method, url, {} if method == "POST" else None)
    assert r.status_code < 500, (url, r.status_code, r.get_data(as_text=True)[:300])


@pytest.mark.parametrize("url", [
    f"/admin/notices?page={10**39}", "/admin/notices?page=1e39", f"/admin/review?page={10**39}",
    f"/admin/audit?page={10**39}", "/admin/audit?page=abc", f"/admin/users/{10**30}",
    f"/admin/notices/{10**30}", "/admin/audit?since=9999-12-31", "/admin/audit?until=9999-12-31",
    "/admin/audit?since=0001-01-01", f"/admin/dashboard?page={10**39}",
    f"/admin/notices?region={10**30}", f"/admin/screens?region={10**30}",
])
def test_admin_urls_with_hostile_values_are_not_500(
    client: FlaskClient, auth: AuthActions, world: World, url: str
) -> None:
    auth.login("admin")
    r = client.get(url)
    assert r.status_code < 500, (url, r.status_code)


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00"])
def test_a_cap_file_with_a_date_out_of_range_is_refused(app: Flask, world: World,
                                                       date: str) -> None:
    from server.services import cap

    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>X-1</identifier><sender>a@b</sender><sent>{date}</sent>
  <status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>zh-CN</language><category>Met</category><event>暴雨</event>
    <urgency>Immediate</urgency><severity>Severe</severity><certainty>Likely</certainty>
    <expires>{date}</expires><headline>h</headline><description>d</description>
    <area><areaDesc>清源县</areaDesc></area></info>
</alert>"""
    with pytest.raises(cap.CapError):
        cap.parse_cap(xml)


def test_another_towns_picture_cannot_be_put_in_a_notice(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Image ids are sequential: a guessed id of another town's upload is refused like an
    unknown one; one's own, a colleague's in the region, and a notice's own pictures are not."""
    import io as _io

    from PIL import Image as PILImage

    from server.services import images, notices
    from server.services.notices import NoticeInput

    def upload(user: Any, shade: int) -> Any:
        out = _io.BytesIO()
        PILImage.new("RGB", (20, 20), (10, shade, 10)).save(out, "PNG")  # each its own
        out.seek(0)
        return images.save_upload(user, out, "p.png")

    from server.models import Role

    other_town_editor = World.user("t2editor", Role.EDITOR, world.other_town)
    theirs = upload(other_town_editor, 100)
    mine = upload(world.village_editor, 150)
    for image, allowed in ((theirs, False), (mine, True)):
        body = NoticeInput(title="图", body="图", category="notice", targets=["V11"],
                           image_ids=[image.id])
        if allowed:
            notices.create(world.village_editor, body)
        else:
            with pytest.raises(ValidationError, match=r"images"):
                notices.create(world.village_editor, body)
            db.session.rollback()
    # The town editor covers the village: the village editor's picture is in its regions.
    notices.create(world.town_editor, NoticeInput(
        title="图2", body="图", category="notice", targets=["T1"], image_ids=[mine.id]))
