"""Structured logs: JSON lines that parse, the request id on the access line and in the response,
screens' connects and disconnects at INFO, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from player import protocol
from server import logs
from server.extensions import socketio
from server.services import screens as screen_service
from server.services import users as user_service
from tests.conftest import PASSWORD, AuthActions, World

NS = protocol.NAMESPACE


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def access(self) -> list[dict[str, Any]]:
        return [e for e in self.lines() if e["logger"] == "cunping.access"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers (pytest's own among them): put them
    back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def json_logs(restore_logging: None) -> Captured:
    captured = Captured()
    logs.configure(level="INFO", fmt="json", stream=captured.stream)
    return captured


def test_json_lines_parse_and_carry_the_request_id(app: Flask, client: FlaskClient,
                                                    json_logs: Captured) -> None:
    response = client.get("/admin/login")
    rid = response.headers["X-Request-ID"]
    assert len(rid) == 32
    (line,) = json_logs.access()
    assert line["request_id"] == rid
    assert (line["method"], line["path"], line["status"]) == ("GET", "/admin/login", 200)
    assert line["level"] == "INFO" and isinstance(line["ms"], float) and line["ms"] >= 0
    assert line["time"].endswith("Z") and line["time"][10] == "T"
    assert isinstance(line["pid"], int)
    assert line["message"].startswith("GET /admin/login 200 ")


def test_a_sane_incoming_request_id_is_kept_and_others_replaced(
    app: Flask, client: FlaskClient, json_logs: Captured
) -> None:
    kept = client.get("/healthz", headers={"X-Request-ID": "nginx-5f2b9c0e.1"})
    assert kept.headers["X-Request-ID"] == "nginx-5f2b9c0e.1"
    for bad in ("x" * 65, "a b", "id\r\nSet-Cookie: x=1", "id\n", "", "ид"):
        got = client.get("/healthz", environ_base={"HTTP_X_REQUEST_ID": bad})
        assert got.headers["X-Request-ID"] != bad
        assert len(got.headers["X-Request-ID"]) == 32
    ids = [line["request_id"] for line in json_logs.access()]
    assert ids[0] == "nginx-5f2b9c0e.1" and len(set(ids)) == len(ids)


def test_lines_logged_during_a_request_carry_its_id(app: Flask, json_logs: Captured) -> None:
    def noisy() -> str:
        logging.getLogger("server.test").warning("something odd", extra={"screen": "AB12CD"})
        return "ok"

    app.add_url_rule("/noisy", view_func=noisy)
    response = app.test_client().get("/noisy", headers={"X-Request-ID": "req-42"})
    assert response.headers["X-Request-ID"] == "req-42"
    (odd,) = [e for e in json_logs.lines() if e["logger"] == "server.test"]
    assert (odd["request_id"], odd["screen"], odd["level"]) == ("req-42", "AB12CD", "WARNING")


def test_metrics_scrapes_stay_out_of_the_info_log(app: Flask, client: FlaskClient,
                                                  json_logs: Captured) -> None:
    assert client.get("/metrics").status_code == 200
    assert json_logs.access() == []


def test_screens_connect_and_disconnect_at_info(app: Flask, world: World,
                                               json_logs: Captured) -> None:
    screen, token = screen_service.provision(None, world.village, "屏")
    player = socketio.test_client(app, namespace=NS, auth={"token": token})
    assert player.is_connected(NS)
    player.disconnect(NS)
    mine = [e for e in json_logs.lines() if e.get("screen") == screen.code]
    assert [e["message"].split(" (")[0] for e in mine] == [
        f"screen {screen.code} connected", f"screen {screen.code} disconnected"]
    assert all(e["level"] == "INFO" and e["sid"] for e in mine)
    assert token not in json_logs.text()


def test_text_format_appends_the_extras(app: Flask, client: FlaskClient,
                                        restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure(level="INFO", fmt="text", stream=stream)
    response = client.get("/healthz")
    (line,) = [x for x in stream.getvalue().splitlines() if "cunping.access" in x]
    assert " INFO " in line and "GET /healthz 200" in line
    assert f"request_id={response.headers['X-Request-ID']}" in line and "status=200" in line


def test_the_level_is_honoured(app: Flask, client: FlaskClient, restore_logging: None,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("CUNPING_LOG_LEVEL", "warning")
    monkeypatch.setenv("CUNPING_LOG_FORMAT", "json")
    logs.configure(stream=stream)
    client.get("/healthz")
    logging.getLogger("server.test").warning("kept")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [e["message"] for e in lines] == ["kept"]


def test_no_token_password_or_cookie_reaches_the_log(
    app: Flask, client: FlaskClient, world: World, auth: AuthActions,
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    logs.configure(level="DEBUG", fmt="json", stream=stream)
    _t, api_token = user_service.create_token(world.admin, "ci")
    screen, screen_token = screen_service.provision(None, world.village, "屏")
    auth.login("admin")
    cookie = client.get_cookie("session")
    assert cookie is not None
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {api_token}"})
    client.get(f"/api/v1/me?token={api_token}")
    player = socketio.test_client(app, namespace=NS, auth={"token": screen_token})
    assert player.is_connected(NS)
    player.disconnect(NS)
    socketio.test_client(app, namespace=NS, auth={"token": screen_token + "x"})
    # Whoever logs a token by mistake, the line keeps only its public prefix.
    logging.getLogger("server.test").info("got %s from %s", screen_token, api_token)
    logging.getLogger("server.test").info(f"header Bearer {api_token}")
    text = stream.getvalue()
    assert screen.code in text and "/api/v1/me" in text
    # Tokens are <kind>_<public prefix>_<secret>; the secret may itself contain "_".
    screen_public = "_".join(screen_token.split("_")[:2]) + "_"
    api_public = "_".join(api_token.split("_")[:2]) + "_"
    for secret in (api_token, screen_token, PASSWORD, cookie.value,
                   api_token[len(api_public):], screen_token[len(screen_public):]):
        assert secret not in text, secret
    masked = [json.loads(x)["message"] for x in text.splitlines() if "server.test" in x]
    assert masked[0] == f"got {screen_public}*** from {api_public}***"
    assert masked[1] == "header Bearer ***"


def test_masking() -> None:
    assert logs.mask("cps_1a2b3c4d_abcdefghijklmnop") == "cps_1a2b3c4d_***"
    assert logs.mask("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer ***"
    assert logs.mask("screen_rooms region_ids cps_x") == "screen_rooms region_ids cps_x"
