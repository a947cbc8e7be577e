"""The JSON API: tokens, every endpoint, the workflow, permissions, and the error envelope."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.models import User
from server.models.base import utcnow
from server.services import notices, users
from server.services import regions as region_service
from tests.conftest import World


def token_for(user: User) -> str:
    return users.create_token(user, "county cms")[1]


class Api:
    """A client that sends one user's token with every call."""

    def __init__(self, client: FlaskClient, user: User) -> None:
        self.client = client
        self.headers = {"Authorization": "Bearer " + token_for(user)}

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get("/api/v1" + path, headers=self.headers, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> TestResponse:
        return self.client.post("/api/v1" + path, json=json, headers=self.headers, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> TestResponse:
        return self.client.patch("/api/v1" + path, json=json, headers=self.headers, **kw)


@pytest.fixture(autouse=True)
def _english(client: FlaskClient) -> None:
    """Messages in English, whatever catalog is compiled: the tests read some of them."""
    client.set_cookie("lang", "en")


def notice_json(**kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "关于召开村民代表会议的通知",
        "body": "定于本周六上午九点在村委会召开。\n\n- 议题一\n- 议题二",
        "category": "village",
        "targets": ["V11"],
    }
    data.update(kw)
    return data


def error_of(response: TestResponse, status: int) -> dict[str, Any]:
    """Assert the JSON error envelope with `status` and return its `error` object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    err = response.get_json()["error"]
    assert err["status"] == status and err["message"]
    return err


@pytest.fixture
def veditor(client: FlaskClient, world: World) -> Api:
    return Api(client, world.village_editor)


@pytest.fixture
def vreviewer(client: FlaskClient, world: World) -> Api:
    return Api(client, world.village_reviewer)


# --- authentication ----------------------------------------------------------------------------


def test_no_token_is_401_with_a_challenge(client: FlaskClient, world: World) -> None:
    r = client.get("/api/v1/notices")
    err = error_of(r, 401)
    assert "Authorization: Bearer" in err["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer cp_deadbeef_notarealtoken", "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer "],
)
def test_bad_tokens_are_401(client: FlaskClient, world: World, header: str) -> None:
    r = client.get("/api/v1/me", headers={"Authorization": header})
    error_of(r, 401)
    assert "Bearer" in r.headers["WWW-Authenticate"]


def test_revoked_token_and_deactivated_user_are_401(client: FlaskClient, world: World) -> None:
    token, secret = users.create_token(world.village_editor, "cms")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    users.revoke_token(world.village_editor, token)
    r = client.get("/api/v1/me", headers=headers)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    error_of(r, 401)

    _, secret2 = users.create_token(world.town_editor, "cms")
    users.update(
        world.admin,
        world.town_editor,
        display_name="t",
        active=False,
        grants=[(g.role, g.region) for g in world.town_editor.grants],
    )
    error_of(client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret2}"}), 401)


def test_session_login_does_not_open_the_api(client: FlaskClient, world: World, auth: Any) -> None:
    auth.login("veditor")
    error_of(client.get("/api/v1/me"), 401)


def test_every_route_but_openapi_needs_a_token(app: Any, client: FlaskClient, world: World) -> None:
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint == "api.openapi":
            continue
        url = rule.rule.replace("<ref>", "1").replace("<code>", "C0")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            r = client.open(url, method=method)
            assert r.status_code == 401, (method, url)
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_me(veditor: Api, world: World) -> None:
    r = veditor.get("/me")
    assert r.status_code == 200
    me = r.get_json()
    assert me["username"] == "veditor" and me["roles"] == ["editor"]
    assert me["grants"] == [{"role": "editor", "region": {"code": "V11", "name": "前王庄村"}}]
    assert r.headers["Cache-Control"] == "no-store"


# --- reading -----------------------------------------------------------------------------------


def test_regions_and_categories(client: FlaskClient, world: World) -> None:
    api = Api(client, world.nobody)  # regions are not secret: any valid token reads them
    items = api.get("/regions").get_json()["items"]
    codes = [r["code"] for r in items]
    assert codes[0] == "C0" and set(codes) == {"C0", "T1", "T2", "V11", "V12", "V21"}
    assert codes.index("T1") < codes.index("V11")
    v11 = next(r for r in items if r["code"] == "V11")
    assert v11 == {
        "code": "V11",
        "name": "前王庄村",
        "parent": "T1",
        "depth": 2,
        "level": "village",
        "path": ["C0", "T1", "V11"],
        "full_name": "清源县 · 柳河镇 · 前王庄村",
    }
    under = [r["code"] for r in api.get("/regions?under=T1").get_json()["items"]]
    assert under == ["T1", "V11", "V12"]
    err = error_of(api.get("/regions?under=NOPE"), 400)
    assert "under" in err["fields"]

    town = api.get("/regions/T1").get_json()
    assert town["parent"] == "C0" and town["path"] == ["C0", "T1"]
    assert [c["code"] for c in town["children"]] == ["V11", "V12"]
    assert api.get("/regions/C0").get_json()["parent"] is None
    error_of(api.get("/regions/NOPE"), 404)

    cats = api.get("/categories").get_json()["items"]
    assert {"finance", "party", "village", "policy", "service", "notice"} <= {
        c["key"] for c in cats
    }
    finance = next(c for c in cats if c["key"] == "finance")
    assert finance["name"] == "财务公开"


def test_create_and_read_a_notice(veditor: Api, app: Any) -> None:
    r = veditor.post("/notices", notice_json(pinned=True, duration_s=30))
    assert r.status_code == 201, r.get_data(as_text=True)
    n = r.get_json()
    assert r.headers["Location"].endswith(f"/api/v1/notices/{n['id']}")
    assert n["status"] == "draft" and len(n["code"]) == 6
    assert n["url"] == f"http://cp.test/n/{n['code']}"
    assert n["qr_url"] == f"http://cp.test/n/{n['code']}/qr.png"
    rev = n["revision"]
    assert rev["number"] == 1 and rev["state"] == "draft"
    assert rev["category"] == "village" and rev["targets"] == ["V11"]
    assert rev["pinned"] is True and rev["duration_s"] == 30
    assert "<li>议题一</li>" in rev["body_html"]
    assert rev["created_by"]["username"] == "veditor"
    assert n["live_revision"] is None and n["live_revision_number"] is None
    assert [e["action"] for e in n["history"]] == ["create"]
    assert n["history"][0]["user"]["username"] == "veditor"

    by_code = veditor.get(f"/notices/{n['code']}").get_json()
    by_id = veditor.get(f"/notices/{n['id']}").get_json()
    assert by_code == by_id and by_id["revision"]["title"] == notice_json()["title"]


def test_list_filters_and_paging(client: FlaskClient, world: World) -> None:
    editor = Api(client, world.county_editor)
    ids = []
    for i in range(5):
        body = notice_json(title=f"财务公开 第{i}期", category="finance", targets=["V11"])
        ids.append(editor.post("/notices", body).get_json()["id"])
    other = editor.post("/notices", notice_json(title="石桥镇通知", targets=["T2"])).get_json()
    editor.post(f"/notices/{ids[0]}/submit")

    page = editor.get("/notices").get_json()
    assert page["total"] == 6 and page["page"] == 1 and page["per_page"] == 30
    assert page["items"][0]["id"] == ids[0]  # newest change first
    summary = page["items"][0]
    assert {"id", "code", "status", "url", "title", "category", "targets"} <= set(summary)

    p2 = editor.get("/notices?per_page=4&page=2").get_json()
    assert (p2["page"], p2["per_page"], p2["total"], len(p2["items"])) == (2, 4, 6, 2)
    too_many = editor.get("/notices?per_page=1000")  # the spec's maximum is 100: refused
    assert too_many.status_code == 400 and "per_page" in too_many.get_json()["error"]["fields"]
    assert editor.get("/notices?per_page=100").get_json()["per_page"] == 100
    unknown = editor.get("/notices?per_pge=5")  # a misspelt parameter is not ignored
    assert unknown.status_code == 400 and "per_pge" in unknown.get_json()["error"]["fields"]

    assert editor.get("/notices?category=finance").get_json()["total"] == 5
    assert editor.get("/notices?status=submitted").get_json()["total"] == 1
    assert editor.get("/notices?status=pending_review").get_json()["total"] == 1
    assert editor.get("/notices?status=draft").get_json()["total"] == 5
    only = editor.get("/notices?region=T2").get_json()
    assert [n["id"] for n in only["items"]] == [other["id"]]
    assert editor.get("/notices?q=第3期").get_json()["total"] == 1
    assert editor.get(f"/notices?q={other['code']}").get_json()["total"] == 1

    # Visibility follows the token's regions.
    town2 = Api(client, world.town_editor)
    assert town2.get("/notices").get_json()["total"] == 5  # not the one in 石桥镇
    assert Api(client, world.nobody).get("/notices").get_json()["total"] == 0


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=bogus", "status"),
        ("category=bogus", "category"),
        ("region=NOPE", "region"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("per_page=-3", "per_page"),
        ("q=" + "x" * 201, "q"),
    ],
)
def test_list_bad_parameters(veditor: Api, query: str, field: str) -> None:
    err = error_of(veditor.get("/notices?" + query), 400)
    assert field in err["fields"]


def test_unknown_notice_and_outside_notice(client: FlaskClient, world: World) -> None:
    api = Api(client, world.village_editor)
    error_of(api.get("/notices/999999"), 404)
    error_of(api.get("/notices/zzzzzz"), 404)
    error_of(api.post("/notices/999999/submit"), 404)
    other = Api(client, world.county_editor).post("/notices", notice_json(targets=["V21"]))
    err = error_of(api.get(f"/notices/{other.get_json()['id']}"), 403)
    assert "outside your regions" in err["message"]


# --- the workflow ------------------------------------------------------------------------------


def test_walkthrough_create_submit_approve_publish_withdraw(
    veditor: Api, vreviewer: Api, client: FlaskClient
) -> None:
    n = veditor.post("/notices", notice_json()).get_json()
    ref = f"/notices/{n['id']}"

    r = veditor.post(ref + "/submit")
    assert r.status_code == 200 and r.get_json()["status"] == "submitted"
    assert r.get_json()["revision"]["submitted_by"]["username"] == "veditor"

    r = vreviewer.post(ref + "/approve", {"revision": 1})
    assert r.status_code == 200 and r.get_json()["status"] == "approved"
    assert r.get_json()["revision"]["reviewed_by"]["username"] == "vreviewer"

    err = error_of(vreviewer.post(ref + "/approve", {"revision": 1}), 409)
    assert "approved" in err["message"].lower()
    error_of(vreviewer.post(ref + "/approve"), 409)  # approving twice, unguarded

    r = veditor.post(ref + "/publish")
    body = r.get_json()
    assert r.status_code == 200 and body["status"] == "published"
    assert body["revision"]["state"] == "live" and body["published_at"].endswith("+08:00")
    assert body["live_revision"] is None and body["live_revision_number"] == 1

    # Residents can now read it by its code (the public side is another module's, but the URL
    # the API hands out must be the one residents use).
    assert body["url"].endswith("/n/" + n["code"])

    error_of(veditor.post(ref + "/withdraw", {}), 422)  # a reason is required
    r = veditor.post(ref + "/withdraw", {"reason": "内容有误，重新发布"})
    assert r.status_code == 200 and r.get_json()["status"] == "withdrawn"
    assert r.get_json()["withdraw_reason"] == "内容有误，重新发布"
    error_of(veditor.post(ref + "/withdraw", {"reason": "again"}), 409)

    history = veditor.get(ref).get_json()["history"]
    assert [e["action"] for e in history] == ["create", "submit", "approve", "publish", "withdraw"]
    assert history[-1]["reason"] == "内容有误，重新发布"
    assert history[2]["user"]["username"] == "vreviewer" and history[2]["revision"] == 1


def test_reject_sends_back_to_draft_with_a_reason(veditor: Api, vreviewer: Api) -> None:
    ref = f"/notices/{veditor.post('/notices', notice_json()).get_json()['id']}"
    veditor.post(ref + "/submit")
    err = error_of(vreviewer.post(ref + "/reject"), 422)
    assert "reason" in err["fields"]
    err = error_of(vreviewer.post(ref + "/reject", {"reason": "x" * 501}), 422)
    assert "reason" in err["fields"]
    r = vreviewer.post(ref + "/reject", {"reason": "金额与附件不符"})
    n = r.get_json()
    assert r.status_code == 200 and n["status"] == "draft"
    assert n["reject_reason"] == "金额与附件不符" == n["revision"]["reject_reason"]
    error_of(vreviewer.post(ref + "/reject", {"reason": "again"}), 409)
    # Resubmitting clears the reason.
    assert veditor.post(ref + "/submit").get_json()["reject_reason"] is None


def test_publishing_a_draft_or_submitting_twice_is_409(veditor: Api) -> None:
    ref = f"/notices/{veditor.post('/notices', notice_json()).get_json()['id']}"
    err = error_of(veditor.post(ref + "/publish"), 409)
    assert "draft" in err["message"].lower()
    veditor.post(ref + "/submit")
    error_of(veditor.post(ref + "/submit"), 409)
    error_of(veditor.post(ref + "/publish"), 409)


def test_approve_guards_the_revision_number(veditor: Api, vreviewer: Api) -> None:
    ref = f"/notices/{veditor.post('/notices', notice_json()).get_json()['id']}"
    veditor.post(ref + "/submit")
    error_of(vreviewer.post(ref + "/approve", {"revision": 2}), 409)
    error_of(vreviewer.post(ref + "/approve", {"revision": "1"}), 422)
    assert vreviewer.post(ref + "/approve", {"revision": 1}).status_code == 200


def test_patch_is_partial_and_revises_a_live_notice(veditor: Api, vreviewer: Api) -> None:
    created = veditor.post("/notices", notice_json(pinned=True, duration_s=45)).get_json()
    ref = f"/notices/{created['id']}"
    r = veditor.patch(ref, {"title": "关于召开村民代表会议的通知（更正）"})
    n = r.get_json()
    assert r.status_code == 200
    assert n["revision"]["title"].endswith("（更正）")
    assert n["revision"]["body"] == created["revision"]["body"]  # kept
    assert n["revision"]["pinned"] is True and n["revision"]["duration_s"] == 45
    assert n["revision"]["targets"] == ["V11"] and n["revision"]["number"] == 1

    veditor.post(ref + "/submit")
    # Editing a submitted revision sends it back to draft.
    assert veditor.patch(ref, {"pinned": False}).get_json()["status"] == "draft"
    veditor.post(ref + "/submit")
    vreviewer.post(ref + "/approve")
    veditor.post(ref + "/publish")

    r = veditor.patch(ref, {"body": "会议改到周日上午。"})
    n = r.get_json()
    assert n["status"] == "published"  # the live revision stays on screens
    assert n["revision"]["number"] == 2 and n["revision"]["state"] == "draft"
    assert n["live_revision_number"] == 1
    assert n["live_revision"]["body"] == created["revision"]["body"]
    assert n["revision"]["title"].endswith("（更正）")  # kept from the live revision

    veditor.post(ref + "/submit")
    error_of(vreviewer.post(ref + "/approve", {"revision": 1}), 409)
    vreviewer.post(ref + "/approve", {"revision": 2})
    n = veditor.post(ref + "/publish").get_json()
    assert n["live_revision_number"] == 2 and n["live_revision"] is None
    assert n["revision"]["body"] == "会议改到周日上午。"

    # PATCH can clear a time with null.
    at = (utcnow() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    n = veditor.patch(ref, {"expire_at": at}).get_json()
    assert n["revision"]["expire_at"] is not None
    assert veditor.patch(ref, {"expire_at": None}).get_json()["revision"]["expire_at"] is None


def test_scheduled_publish(veditor: Api, vreviewer: Api) -> None:
    later = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ref = f"/notices/{veditor.post('/notices', notice_json(publish_at=later)).get_json()['id']}"
    veditor.post(ref + "/submit")
    n = vreviewer.post(ref + "/approve").get_json()  # approval releases it for its time
    assert n["status"] == "scheduled" and n["revision"]["state"] == "scheduled"
    assert n["history"][-1]["action"] == "schedule"


def test_a_held_notice_waits_for_its_editor(veditor: Api, vreviewer: Api) -> None:
    later = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = veditor.post("/notices", notice_json(publish_at=later, hold=True)).get_json()
    assert created["revision"]["hold"] is True
    ref = f"/notices/{created['id']}"
    veditor.post(ref + "/submit")
    assert vreviewer.post(ref + "/approve").get_json()["status"] == "approved"
    n = veditor.post(ref + "/publish").get_json()
    assert n["status"] == "scheduled"


def test_a_time_budget_is_checked_and_sent_to_screens(veditor: Api) -> None:
    bad = veditor.post("/notices", notice_json(budget_s=5))
    assert bad.status_code == 422 and "budget_s" in bad.get_json()["error"]["fields"]
    n = veditor.post("/notices", notice_json(budget_s=300)).get_json()
    assert n["revision"]["budget_s"] == 300
    n = veditor.patch(f"/notices/{n['id']}", {"budget_s": None}).get_json()
    assert n["revision"]["budget_s"] is None


# --- time zones --------------------------------------------------------------------------------


def test_times_naive_means_shanghai_and_output_is_plus_eight(veditor: Api, app: Any) -> None:
    body = notice_json(publish_at="2031-03-01T09:00:00", expire_at="2031-03-02T01:00:00Z")
    n = veditor.post("/notices", body).get_json()
    assert n["revision"]["publish_at"] == "2031-03-01T09:00:00+08:00"
    assert n["revision"]["expire_at"] == "2031-03-02T09:00:00+08:00"
    notice = notices.get_by_id(n["id"])
    # Stored as naive UTC.
    assert notice.current.publish_at is not None
    assert notice.current.publish_at.isoformat() == "2031-03-01T01:00:00"
    assert notice.current.expire_at is not None
    assert notice.current.expire_at.isoformat() == "2031-03-02T01:00:00"
    n = veditor.patch(f"/notices/{n['id']}", {"publish_at": "2031-03-01T12:00:00+09:00"})
    assert n.get_json()["revision"]["publish_at"] == "2031-03-01T11:00:00+08:00"


def test_expiry_before_publication_is_422(veditor: Api) -> None:
    body = notice_json(publish_at="2031-03-02T09:00:00", expire_at="2031-03-01T09:00:00")
    err = error_of(veditor.post("/notices", body), 422)
    assert set(err["fields"]) == {"expire_at"}
    err = error_of(veditor.post("/notices", notice_json(expire_at="2001-01-01T00:00:00")), 422)
    assert "expire_at" in err["fields"]


# --- permissions -------------------------------------------------------------------------------


def test_town_editor_cannot_target_another_town(client: FlaskClient, world: World) -> None:
    api = Api(client, world.town_editor)
    err = error_of(api.post("/notices", notice_json(targets=["V11", "V21"])), 422)
    assert set(err["fields"]) == {"targets"} and "南岭村" in err["fields"]["targets"]
    assert api.post("/notices", notice_json(targets=["T1"])).status_code == 201
    assert api.get("/notices").get_json()["total"] == 1


def test_town_editor_cannot_patch_into_another_town(client: FlaskClient, world: World) -> None:
    api = Api(client, world.town_editor)
    ref = f"/notices/{api.post('/notices', notice_json()).get_json()['id']}"
    err = error_of(api.patch(ref, {"targets": ["V21"]}), 422)
    assert "targets" in err["fields"]
    assert api.get(ref).get_json()["revision"]["targets"] == ["V11"]  # nothing lost


def test_reviewer_cannot_create(vreviewer: Api) -> None:
    err = error_of(vreviewer.post("/notices", notice_json()), 422)
    assert "targets" in err["fields"]
    assert vreviewer.get("/notices").get_json()["total"] == 0


def test_editor_cannot_approve_and_reviewer_cannot_approve_own(
    client: FlaskClient, world: World
) -> None:
    editor = Api(client, world.village_editor)
    ref = f"/notices/{editor.post('/notices', notice_json()).get_json()['id']}"
    editor.post(ref + "/submit")
    error_of(editor.post(ref + "/approve"), 403)
    error_of(editor.post(ref + "/reject", {"reason": "no"}), 403)
    # Another town's reviewer cannot even see it.
    other = Api(client, world.county_editor)
    ref2 = f"/notices/{other.post('/notices', notice_json(targets=['V21'])).get_json()['id']}"
    other.post(ref2 + "/submit")
    error_of(Api(client, world.town_reviewer).post(ref2 + "/approve"), 403)
    # An admin who submitted cannot approve their own submission.
    admin = Api(client, world.admin)
    ref3 = f"/notices/{admin.post('/notices', notice_json()).get_json()['id']}"
    admin.post(ref3 + "/submit")
    err = error_of(admin.post(ref3 + "/approve"), 403)
    assert "yourself" in err["message"]
    assert admin.get(ref3).get_json()["status"] == "submitted"


def test_village_editor_cannot_edit_a_county_notice(client: FlaskClient, world: World) -> None:
    county = Api(client, world.county_editor)
    ref = f"/notices/{county.post('/notices', notice_json(targets=['C0'])).get_json()['id']}"
    village = Api(client, world.village_editor)
    assert village.get(ref).status_code == 200  # a county-wide notice is visible in villages
    error_of(village.patch(ref, {"title": "改"}), 403)
    error_of(village.post(ref + "/submit"), 403)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "长" * 201}, "title"),
        ({"title": "two\nlines"}, "title"),
        ({"body": ""}, "body"),
        ({"body": "字" * 20_001}, "body"),
        ({"category": "nope"}, "category"),
        ({"targets": []}, "targets"),
        ({"targets": ["NOPE"]}, "targets"),
        ({"duration_s": 1}, "duration_s"),
        ({"image_ids": [424242]}, "images"),
        ({"publish_at": "next tuesday"}, "publish_at"),
        # wrong types
        ({"title": 42}, "title"),
        ({"body": ["a"]}, "body"),
        ({"targets": "V11"}, "targets"),
        ({"targets": [11]}, "targets"),
        ({"pinned": "yes"}, "pinned"),
        ({"duration_s": "20"}, "duration_s"),
        ({"duration_s": True}, "duration_s"),
        ({"image_ids": "1"}, "image_ids"),
        ({"expire_at": 1700000000}, "expire_at"),
        ({"category": {"key": "finance"}}, "category"),
    ],
)
def test_bad_fields_are_422_and_save_nothing(
    veditor: Api, patch: dict[str, Any], field: str
) -> None:
    err = error_of(veditor.post("/notices", notice_json(**patch)), 422)
    assert field in err["fields"]
    assert veditor.get("/notices").get_json()["total"] == 0


def test_type_errors_and_rule_errors_come_together(veditor: Api) -> None:
    err = error_of(veditor.post("/notices", {"title": 1, "body": "", "targets": "V11"}), 422)
    assert {"title", "body", "targets", "category"} <= set(err["fields"])
    assert err["fields"]["title"] == "Must be a string."


def test_bad_patch_loses_nothing(veditor: Api) -> None:
    created = veditor.post("/notices", notice_json()).get_json()
    ref = f"/notices/{created['id']}"
    error_of(veditor.patch(ref, {"title": "", "body": "新内容"}), 422)
    after = veditor.get(ref).get_json()
    assert after["revision"] == created["revision"]


@pytest.mark.parametrize(
    "data, content_type, status",
    [
        ("{not json", "application/json", 400),
        ('"a string"', "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ("", "application/json", 400),
        ("title=x", "application/x-www-form-urlencoded", 415),
        ('{"title": "x"}', "text/plain", 415),
        (b"\xff\xfe{", "application/json", 400),
    ],
)
def test_malformed_bodies(veditor: Api, data: str | bytes, content_type: str, status: int) -> None:
    r = veditor.client.post(
        "/api/v1/notices", data=data, content_type=content_type, headers=veditor.headers
    )
    error_of(r, status)


def test_unknown_fields_are_400(veditor: Api) -> None:
    err = error_of(veditor.post("/notices", notice_json(expires="2031-01-01")), 400)
    assert set(err["fields"]) == {"expires"}
    ref = f"/notices/{veditor.post('/notices', notice_json()).get_json()['id']}"
    error_of(veditor.patch(ref, {"colour": "red"}), 400)
    error_of(veditor.post(ref + "/submit", {"now": True}), 400)


def test_html_and_script_are_inert(veditor: Api, vreviewer: Api) -> None:
    title = '<script>alert("t")</script><b>标题</b>'
    body = (
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n"
        '**加粗** <a href="javascript:x">x</a>'
    )
    n = veditor.post("/notices", notice_json(title=title, body=body)).get_json()
    rev = n["revision"]
    assert rev["title"] == title  # plain text, exactly as sent; clients escape it
    html = rev["body_html"]
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "&lt;script&gt;" in html and "&lt;img" in html
    assert "<strong>加粗</strong>" in html


def test_finance_table_renders(veditor: Api) -> None:
    body = (
        "2025年3月收支明细：\n\n| 项目 | 金额（元） |\n|---|---:|\n"
        "| 电费 | 1,230.00 |\n| 保洁 | 800.00 |"
    )
    n = veditor.post("/notices", notice_json(body=body, category="finance")).get_json()
    html = n["revision"]["body_html"]
    assert "<table>" in html and re.search(r"<td[^>]*>电费</td>", html)


# --- HTTP-level errors ---------------------------------------------------------------------------


def test_404_405_are_json(veditor: Api) -> None:
    error_of(veditor.get("/nothing-here"), 404)
    error_of(veditor.client.delete("/api/v1/notices", headers=veditor.headers), 405)
    error_of(veditor.client.put("/api/v1/regions", headers=veditor.headers), 405)


def test_oversized_request_is_413_json(veditor: Api, app: Any) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    r = veditor.post("/notices", notice_json(body="字" * 40_000))
    error_of(r, 413)


def test_numeric_region_codes_are_codes_not_ids(client: FlaskClient, world: World) -> None:
    # Region codes are often all digits (371399101002). One equal to another region's id must
    # still mean the region with that code.
    other_id = str(world.other_town.id)
    region_service.create(None, other_id, "数字村", world.town)
    api = Api(client, world.town_editor)
    r = api.post("/notices", notice_json(targets=[other_id]))
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["revision"]["targets"] == [other_id]
    assert api.get(f"/regions/{other_id}").get_json()["parent"] == "T1"


def test_huge_or_odd_notice_refs_are_404(veditor: Api) -> None:
    for ref in ("99999999999999999999", "2147483648", "-1", "%E4%B8%AD", "%C2%B2", "%D9%A3"):
        error_of(veditor.get("/notices/" + ref), 404)
