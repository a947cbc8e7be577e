"""Screenshots: an editor asks, the player's namespace gets SCREENSHOT in the screen's room, the
player's FRAME is checked and kept; the admin routes show it."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient
from PIL import Image

from player import protocol
from server.extensions import db, socketio
from server.models import AuditEvent, Screenshot
from server.models.base import utcnow
from server.services import screens as screen_service
from server.services import screenshots
from server.services.errors import Conflict, PermissionDenied
from tests.conftest import AuthActions, World, csrf_token

NS = protocol.NAMESPACE


def jpeg(size: tuple[int, int] = (320, 180), color: str = "#c62828", quality: int = 80) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG", quality=quality)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Player:
    """A screen with a connected test client on the players' namespace."""

    def __init__(self, app: Flask, region: Any, name: str) -> None:
        self.screen, token = screen_service.provision(None, region, name)
        self.client: SocketIOTestClient = socketio.test_client(app, namespace=NS,
                                                                auth={"token": token})
        assert self.client.is_connected(NS)
        self.client.get_received(NS)

    def requests(self) -> list[str]:
        return [e["args"][0]["request"] for e in self.client.get_received(NS)
                if e["name"] == protocol.SCREENSHOT]

    def frame(self, request: str, image: str, **extra: Any) -> dict[str, Any]:
        data = {"request": request, "image": image, "width": 320, "height": 180,
                "showing": "Ab3xK9", **extra}
        ack = self.client.emit(protocol.FRAME, data, namespace=NS, callback=True)
        assert isinstance(ack, dict)
        return ack


def test_a_request_reaches_only_that_screens_player_and_its_frame_is_kept(
    app: Flask, world: World
) -> None:
    one = Player(app, world.village, "甲屏")
    two = Player(app, world.village, "乙屏")
    shot = screenshots.request(world.village_editor, one.screen)
    assert shot.taken_at is None and shot.requested_by_id == world.village_editor.id
    assert one.requests() == [shot.request]
    assert two.requests() == []
    assert screenshots.pending(one.screen) is shot and screenshots.latest(one.screen) is None

    image = jpeg()
    assert one.frame(shot.request, b64(image)) == {"status": "ok"}
    db.session.refresh(shot)
    assert shot.image == image and (shot.width, shot.height) == (320, 180)
    assert shot.showing == "Ab3xK9" and shot.taken_at is not None
    assert screenshots.latest(one.screen) is shot and screenshots.pending(one.screen) is None
    audit = db.session.scalars(db.select(AuditEvent).where(
        AuditEvent.entity == "screen", AuditEvent.action == "screenshot")).all()
    assert [(a.entity_id, a.user_id) for a in audit] == [(one.screen.id, world.village_editor.id)]
    # Answered once: the same request again is refused.
    again = one.frame(shot.request, b64(image))
    assert again == {"status": "refused", "reason": "already answered"}


def test_asking_again_at_once_reuses_the_request(app: Flask, world: World) -> None:
    one = Player(app, world.village, "甲屏")
    first = screenshots.request(world.village_editor, one.screen)
    second = screenshots.request(world.town_editor, one.screen)
    assert second.id == first.id
    assert one.requests() == [first.request]  # the player was asked once
    later = utcnow() + timedelta(seconds=screenshots.RATE_SECONDS + 1)
    third = screenshots.request(world.town_editor, one.screen, now=later)
    assert third.id != first.id and one.requests() == [third.request]


def test_only_people_who_manage_the_screen_may_ask(app: Flask, world: World) -> None:
    one = Player(app, world.village, "甲屏")
    for outsider in (world.town_reviewer, world.county_alert, world.nobody):
        with pytest.raises(PermissionDenied):
            screenshots.request(outsider, one.screen)
    other = Player(app, world.other_village, "南岭屏")
    with pytest.raises(PermissionDenied):
        screenshots.request(world.town_editor, other.screen)
    assert one.requests() == [] and other.requests() == []


def test_an_offline_or_revoked_screen_cannot_be_asked(app: Flask, world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "离线屏")
    with pytest.raises(Conflict):
        screenshots.request(world.village_editor, screen)
    one = Player(app, world.village, "甲屏")
    screen_service.revoke(None, one.screen)
    with pytest.raises(Conflict):
        screenshots.request(world.village_editor, one.screen)


@pytest.mark.parametrize(
    ("make_frame", "reason"),
    [
        (lambda req, other: "not an object", "bad frame"),
        (lambda req, other: {"request": "no-such-request", "image": b64(jpeg())},
         "unknown request"),
        (lambda req, other: {"request": 17, "image": b64(jpeg())}, "unknown request"),
        (lambda req, other: {"request": other, "image": b64(jpeg())}, "unknown request"),
        (lambda req, other: {"request": req}, "no image"),
        (lambda req, other: {"request": req, "image": "!!not base64!!"},
         "image is not base64"),
        (lambda req, other: {"request": req, "image": b64(b"GIF89a" + b"\0" * 100)},
         "not a JPEG"),
        (lambda req, other: {"request": req, "image": b64(png())}, "not a JPEG"),
        (lambda req, other: {"request": req, "image": b64(jpeg()[:400])}, "not a JPEG"),
        (lambda req, other: {"request": req,
                             "image": b64(b"\xff\xd8" + b"\0" * protocol.MAX_FRAME_BYTES)},
         "image too large"),
    ],
    ids=["junk", "unknown", "not-a-string", "other-screens-request", "no-image", "not-base64",
         "gif", "png", "truncated", "oversize"],
)
def test_bad_frames_are_refused_and_nothing_is_kept(
    app: Flask, world: World, make_frame: Any, reason: str
) -> None:
    one = Player(app, world.village, "甲屏")
    two = Player(app, world.village2, "乙屏")
    mine = screenshots.request(world.town_editor, one.screen)
    theirs = screenshots.request(world.town_editor, two.screen)
    data = make_frame(mine.request, theirs.request)
    ack = one.client.emit(protocol.FRAME, data, namespace=NS, callback=True)
    assert ack == {"status": "refused", "reason": reason}
    assert screenshots.latest(one.screen) is None and screenshots.latest(two.screen) is None
    assert screenshots.pending(one.screen) is not None  # still waiting for a good frame


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "#fff").save(out, "PNG")
    return out.getvalue()


def test_a_late_frame_is_refused(app: Flask, world: World) -> None:
    one = Player(app, world.village, "甲屏")
    shot = screenshots.request(world.village_editor, one.screen)
    later = utcnow() + timedelta(seconds=screenshots.PENDING_SECONDS + 1)
    ack = screenshots.receive(one.screen, {"request": shot.request, "image": b64(jpeg())},
                              now=later)
    assert ack == {"status": "refused", "reason": "request expired"}


def test_only_the_last_frames_of_a_screen_are_kept(app: Flask, world: World) -> None:
    one = Player(app, world.village, "甲屏")
    now = utcnow()
    for n in range(screenshots.KEEP + 2):
        moment = now + timedelta(seconds=n * (screenshots.RATE_SECONDS + 1))
        shot = screenshots.request(world.village_editor, one.screen, now=moment)
        assert screenshots.receive(one.screen, {"request": shot.request, "image": b64(jpeg())},
                                   now=moment)["status"] == "ok"
    kept = db.session.scalars(db.select(Screenshot).where(
        Screenshot.screen_id == one.screen.id)).all()
    assert len(kept) == screenshots.KEEP
    assert screenshots.latest(one.screen).id == max(s.id for s in kept)  # type: ignore[union-attr]


# --- the admin routes ----------------------------------------------------------------------


def test_the_button_asks_the_screen_and_the_page_shows_the_picture(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    one = Player(app, world.village, "甲屏")
    auth.login("teditor")
    page_url = f"/admin/dashboard/screens/{one.screen.id}"
    status_url = page_url + "/screenshot.json"
    assert client.get(status_url).get_json() == {"pending": False, "latest": None}
    assert client.get(page_url + "/screenshot.jpg").status_code == 404

    resp = client.post(page_url + "/screenshot", data={"csrf_token": csrf_token(client, page_url)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(page_url)
    [request_id] = one.requests()
    page = client.get(page_url).get_data(as_text=True)
    assert 'data-pending="true"' in page and 'http-equiv="refresh"' in page  # polls
    assert client.get(status_url).get_json()["pending"] is True

    image = jpeg((640, 360))
    assert one.frame(request_id, b64(image)) == {"status": "ok"}
    status = client.get(status_url).get_json()
    assert status["pending"] is False and status["latest"]["width"] == 640
    img = client.get(status["latest"]["url"])
    assert img.status_code == 200 and img.mimetype == "image/jpeg" and img.data == image
    page = client.get(page_url).get_data(as_text=True)
    assert 'data-pending="false"' in page and status["latest"]["url"] in page.replace("&amp;", "&")


def test_screenshot_routes_are_scoped_and_need_csrf(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    other = Player(app, world.other_village, "南岭屏")
    mine = Player(app, world.village, "甲屏")
    auth.login("teditor")
    base = f"/admin/dashboard/screens/{other.screen.id}"
    assert client.get(base).status_code == 403
    assert client.get(base + "/screenshot.json").status_code == 403
    assert client.get(base + "/screenshot.jpg").status_code == 403
    token = csrf_token(client, f"/admin/dashboard/screens/{mine.screen.id}")
    assert client.post(base + "/screenshot", data={"csrf_token": token}).status_code == 403
    assert other.requests() == []
    no_csrf = client.post(f"/admin/dashboard/screens/{mine.screen.id}/screenshot")
    assert no_csrf.status_code == 400 and mine.requests() == []
    assert client.get("/admin/dashboard/screens/99999").status_code == 404
    # An alert officer sees the screen and its pictures but may not ask it for one.
    auth.logout()
    auth.login("talert")
    resp = client.get(f"/admin/dashboard/screens/{mine.screen.id}")
    assert resp.status_code == 200 and 'id="shot-form"' not in resp.get_data(as_text=True)
