"""/metrics: the Prometheus text format, who may read it, and the counters moving with real
Socket.IO test clients (connect, publish, events, alerts) and HTTP requests."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient

from player import protocol
from server.extensions import socketio
from server.metrics import families
from server.services import alerts
from server.services import screens as screen_service
from tests.conftest import World
from tests.test_alerts import data as alert_data
from tests.test_screens import publish

NS = protocol.NAMESPACE
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: FlaskClient, **kw: Any) -> Samples:
    response = client.get("/metrics", **kw)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def connect(app: Flask, world: World, name: str = "屏", region: Any = None) -> SocketIOTestClient:
    _screen, token = screen_service.provision(None, region or world.village, name)
    client = socketio.test_client(app, namespace=NS,
                                  auth={"token": token, "revision": 0, "digest": ""})
    assert client.is_connected(NS)
    return client


# --- format and access ----------------------------------------------------------------------


def test_the_exposition_parses_and_names_every_metric(app: Flask, client: FlaskClient) -> None:
    samples = scrape(client)
    names = {name for name, _labels in samples}
    for expected in (
        "cunping_screens_connected", "cunping_socketio_connections",
        "cunping_screen_connections_total", "cunping_screen_connections_refused_total",
        "cunping_notice_pushes_total", "cunping_alert_sends_total", "cunping_alert_acks_total",
        "cunping_alert_ack_seconds_count", "process_resident_memory_bytes",
        "process_cpu_seconds_total", "python_gc_objects_collected_total",
    ):
        assert expected in names, expected
    assert value(samples, "cunping_screens_connected", state="screen") == 0
    assert value(samples, "cunping_notice_pushes_total", op="upsert") >= 0


def test_remote_addresses_are_refused_without_the_token(app: Flask, client: FlaskClient) -> None:
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 403
    # Loopback, but relayed by a proxy: that is somebody outside.
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    # No token configured: a bearer header opens nothing.
    assert client.get("/metrics", environ_base=remote,
                      headers={"Authorization": "Bearer anything"}).status_code == 403


def test_the_token_opens_it_from_anywhere(app: Flask, client: FlaskClient) -> None:
    app.config["METRICS_TOKEN"] = "metrics-secret-0123456789"
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    right = {"Authorization": "Bearer metrics-secret-0123456789"}
    assert client.get("/metrics", environ_base=remote, headers=right).status_code == 200
    relayed = {**right, "X-Forwarded-For": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote, headers=relayed).status_code == 200
    for wrong in ("Bearer metrics-secret-012345678", "Bearer ", "Basic bWV0cmljcw==",
                  "Bearer metrics-secret-0123456789x"):
        got = client.get("/metrics", environ_base=remote, headers={"Authorization": wrong})
        assert got.status_code == 403, wrong
    # A wrong token is refused from loopback as well: it is not silently ignored.
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/metrics").status_code == 200  # loopback, no header


def test_it_needs_no_login_or_csrf_and_is_not_rate_limited(app: Flask, client: FlaskClient) -> None:
    for _ in range(30):
        assert client.get("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405


# --- HTTP -----------------------------------------------------------------------------------


def test_http_requests_are_timed_by_route_rule_not_path(app: Flask, client: FlaskClient,
                                                         world: World) -> None:
    before = scrape(client)
    client.get("/admin/login")
    client.get("/admin/login")
    client.get("/no/such/page/123")
    client.get("/no/such/page/456")
    after = scrape(client)
    name = "cunping_http_request_seconds_count"
    ok = {"method": "GET", "route": "/admin/login", "status": "2xx"}
    assert value(after, name, **ok) - value(before, name, **ok) == 2
    missing = {"method": "GET", "route": "unmatched", "status": "4xx"}
    assert value(after, name, **missing) - value(before, name, **missing) == 2
    routes = {dict(labels).get("route") for n, labels in after if n == name}
    assert "/metrics" not in routes
    assert not any(r and "123" in r for r in routes)
    # A rule with a variable is one series, whatever the value.
    client.get("/n/AAAAAA")
    client.get("/n/BBBBBB")
    later = scrape(client)
    rules = {dict(labels)["route"] for n, labels in later if n == name}
    assert not any("AAAAAA" in r or "BBBBBB" in r for r in rules)


# --- screens --------------------------------------------------------------------------------


def test_connect_and_disconnect_move_the_counters_and_the_gauge(
    app: Flask, client: FlaskClient, world: World
) -> None:
    before = scrape(client)
    player = connect(app, world)
    during = scrape(client)
    assert value(during, "cunping_screens_connected", state="screen") == 1
    assert value(during, "cunping_socketio_connections", namespace=NS) == 1
    assert (value(during, "cunping_screen_connections_total")
            - value(before, "cunping_screen_connections_total")) == 1
    player.disconnect(NS)
    after = scrape(client)
    assert value(after, "cunping_screens_connected", state="screen") == 0

    def disconnects(s: Samples) -> float:
        return sum(v for (n, _l), v in s.items() if n == "cunping_screen_disconnections_total")

    assert disconnects(after) - disconnects(before) == 1
    refused = socketio.test_client(app, namespace=NS, auth={"token": "cps_nope_nope"})
    assert not refused.is_connected(NS)
    last = scrape(client)
    assert (value(last, "cunping_screen_connections_refused_total")
            - value(after, "cunping_screen_connections_refused_total")) == 1


def test_a_publish_counts_one_push_and_a_delivery_per_screen_reached(
    app: Flask, client: FlaskClient, world: World
) -> None:
    here = [connect(app, world, f"屏{i}") for i in range(3)]
    elsewhere = connect(app, world, "南岭屏", world.other_village)
    before = scrape(client)
    notice = publish(world, ["V11"])
    after = scrape(client)
    pushes = "cunping_notice_pushes_total"
    assert value(after, pushes, op="upsert") - value(before, pushes, op="upsert") == 1
    delivered = "cunping_messages_delivered_total"
    assert (value(after, delivered, event=protocol.NOTICE)
            - value(before, delivered, event=protocol.NOTICE)) == 3
    for player in here:
        assert any(e["name"] == protocol.NOTICE for e in player.get_received(NS))
    assert not any(e["name"] == protocol.NOTICE for e in elsewhere.get_received(NS))
    # Nested targets (the town and one of its villages): a screen in both rooms counts once.
    publish(world, ["T1", "V11"], title="两级目标的通知")
    nested = scrape(client)
    assert (value(nested, delivered, event=protocol.NOTICE)
            - value(after, delivered, event=protocol.NOTICE)) == 3
    assert notice.code


def test_events_from_players_are_counted_by_name(app: Flask, client: FlaskClient,
                                                 world: World) -> None:
    player = connect(app, world)
    before = scrape(client)
    player.emit(protocol.SYNC, {"revision": 0, "digest": ""}, namespace=NS)
    player.emit(protocol.SYNC, {"revision": 0, "digest": ""}, namespace=NS)
    player.emit("no-such-event", {}, namespace=NS)
    after = scrape(client)
    name = "cunping_socketio_events_received_total"
    assert value(after, name, event=protocol.SYNC) - value(before, name, event=protocol.SYNC) == 2
    assert value(after, name, event="unknown") - value(before, name, event="unknown") == 1
    assert not any(dict(labels).get("event") == "no-such-event" for _n, labels in after)


# --- alerts ---------------------------------------------------------------------------------


def test_an_acknowledged_alert_is_counted_with_its_latency(
    app: Flask, client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    player = connect(app, world)
    player.get_received(NS)
    before = scrape(client)
    alert = alerts.issue(world.county_alert, alert_data())
    sent = scrape(client)
    assert (value(sent, "cunping_alert_sends_total")
            - value(before, "cunping_alert_sends_total")) == 1
    assert (value(sent, "cunping_messages_delivered_total", event=protocol.ALERTS)
            - value(before, "cunping_messages_delivered_total", event=protocol.ALERTS)) == 1
    # Answer as the player does.
    player.emit(protocol.ALERTS_ACK, {"have": [f"{alert.code}:1"]}, namespace=NS)
    after = scrape(client)
    assert value(after, "cunping_alert_acks_total") - value(sent, "cunping_alert_acks_total") == 1
    count = "cunping_alert_ack_seconds_count"
    assert value(after, count) - value(sent, count) == 1
    assert value(after, "cunping_alert_ack_seconds_bucket", le="10.0") - value(
        sent, "cunping_alert_ack_seconds_bucket", le="10.0") == 1
    assert alerts.delivery_report(alert).acknowledged == 1
