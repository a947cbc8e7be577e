"""/metrics and the JSON logs of real gunicorn server processes sharing Redis: each process
counts the deliveries it writes itself, whichever process published, and screens' alert
acknowledgements where they are connected; the logs are JSON lines without secrets.

Two gunicorn processes (deploy/gunicorn.conf.py) on PostgreSQL and redis-server; the screens
are python-socketio clients speaking the players' protocol with real tokens.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from player import protocol
from server.metrics import families
from tests.conftest import BACKENDS
from tests.deploy.cluster import Cluster, http_status
from tests.e2e.test_screen_e2e import Api
from tests.live import wait_until
from tests.pg import PostgresServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        "postgres" not in BACKENDS,
        reason="the deployment runs on PostgreSQL, its production database, which "
               "CUNPING_TEST_DATABASES leaves out",
    ),
]

TOKEN = "observability-metrics-token-0123456789"
SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "M0", "观测县")
village = regions.create(None, "M11", "观测村", regions.create(None, "M1", "观测镇", county))
editor = users.create(None, "m_editor", "observe-password", grants=[(Role.EDITOR, county)])
reviewer = users.create(None, "m_reviewer", "observe-password",
                        grants=[(Role.REVIEWER, county)])
alerter = users.create(None, "m_alert", "observe-password", grants=[(Role.ALERT, county)])
out = {"tokens": {who: users.create_token(u, "observe")[1]
                  for who, u in (("editor", editor), ("reviewer", reviewer), ("alert", alerter))},
       "screens": [screens.provision(None, village, f"屏{i}")[1] for i in range(3)]}
import json
print(json.dumps(out))
"""


class Screen:
    """A screen's connection: remembers notices and answers ALERTS like the player."""

    def __init__(self, base: str, token: str) -> None:
        self.notices: list[str] = []
        self.alerts: list[str] = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on(protocol.NOTICE, self._notice, namespace=protocol.NAMESPACE)
        self.client.on(protocol.ALERTS, self._alerts, namespace=protocol.NAMESPACE)
        self.client.connect(base, namespaces=[protocol.NAMESPACE], transports=["websocket"],
                            auth={"token": token, "revision": 0, "digest": ""},
                            wait_timeout=20)

    def _notice(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.notices.append(data["notice"]["code"])

    def _alerts(self, data: dict[str, Any]) -> None:
        keys = [protocol.alert_key(a) for a in data["alerts"]]
        with self.lock:
            self.alerts.extend(keys)
        # As the player: acknowledged with ALERTS_ACK once the namespace is connected (the
        # first set comes before the server's connect answer).
        wait_until(lambda: protocol.NAMESPACE in self.client.namespaces, 10,
                   what="the namespace connected")
        self.client.emit(protocol.ALERTS_ACK, {"have": keys}, namespace=protocol.NAMESPACE)


def scrape(base: str, headers: dict[str, str] | None = None) -> dict[tuple[str, str], float]:
    req = urllib.request.Request(base + "/metrics", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in families(text):
        for s in family.samples:
            out[(s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            postgres: PostgresServer) -> Iterator[tuple[Cluster, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("observability")
    found = Cluster.create(folder, postgres, {"CUNPING_LOG_FORMAT": "json",
                                              "METRICS_TOKEN": TOKEN})
    try:
        found.migrate()
        secrets = json.loads(found.run_python(SETUP).strip().splitlines()[-1])
        found.start_redis()
        found.start_server("a", {"CUNPING_SCHEDULER": "0"})
        found.start_server("b", {"CUNPING_SCHEDULER": "0"})
        yield found, secrets
    except BaseException:
        for log in found.logs():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-100:])
            print(f"\n--- {log.name} ---\n{tail}")
        raise
    finally:
        found.stop()


def test_each_process_counts_its_own_deliveries_and_acknowledgements(
    cluster: tuple[Cluster, dict[str, Any]],
) -> None:
    deployment, secrets = cluster
    a, b = deployment.url("a"), deployment.url("b")
    screens = [Screen(b, token) for token in secrets["screens"]]
    try:
        wait_until(lambda: scrape(b)[("cunping_screens_connected", "state=screen")] == 3, 20,
                   what="three screens counted on B")
        assert scrape(a)[("cunping_screens_connected", "state=screen")] == 0
        before_a, before_b = scrape(a), scrape(b)
        notice_key = ("cunping_messages_delivered_total", "event=notice")

        # Published through A, whose own screens are none: B writes it to its three.
        editor = Api(a, secrets["tokens"]["editor"])
        reviewer = Api(a, secrets["tokens"]["reviewer"])
        notice = editor.call("POST", "/notices", {
            "title": "观测村停水通知", "body": "请村民相互转告。", "category": "notice",
            "targets": ["M11"], "duration_s": 5})
        editor.call("POST", f"/notices/{notice['id']}/submit", {})
        reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
        code = editor.call("POST", f"/notices/{notice['id']}/publish", {})["code"]
        wait_until(lambda: all(code in s.notices for s in screens), 30,
                   what="the notice on the three screens")
        after_a, after_b = scrape(a), scrape(b)
        assert after_b.get(notice_key, 0) - before_b.get(notice_key, 0) == 3
        assert after_a.get(notice_key, 0) - before_a.get(notice_key, 0) == 0
        pushes = ("cunping_notice_pushes_total", "op=upsert")
        assert after_a[pushes] - before_a[pushes] == 1
        assert after_b[pushes] - before_b[pushes] == 0

        # An alert issued on A: B's dispatcher sends it, the screens acknowledge to B.
        alert = Api(a, secrets["tokens"]["alert"]).call("POST", "/alerts", {
            "level": "II", "event": "暴雨", "title": "观测县暴雨预警",
            "text": "未来三小时有强降雨，请远离河道。", "sender_name": "观测县应急管理局",
            "targets": ["M11"]})
        key = f"{alert['code']}:{alert['version']}"
        wait_until(lambda: all(key in s.alerts for s in screens), 30, what="the alert shown")
        acks = ("cunping_alert_acks_total", "")
        wait_until(lambda: scrape(b)[acks] - before_b[acks] >= 3, 20, what="B counting acks")
        done = scrape(b)
        latency = ("cunping_alert_ack_seconds_count", "")
        assert done[latency] - before_b[latency] >= 3
        assert done[("cunping_alert_ack_seconds_bucket", "le=10.0")] - before_b[
            ("cunping_alert_ack_seconds_bucket", "le=10.0")] >= 3
        assert scrape(a)[acks] - before_a[acks] == 0
        http = ("cunping_http_request_seconds_count",
                "method=POST,route=/api/v1/notices/<ref>/publish,status=2xx")
        assert done.get(http, 0) == 0 and scrape(a)[http] >= 1
    finally:
        for screen in screens:
            screen.client.disconnect()
    wait_until(lambda: scrape(b)[("cunping_screens_connected", "state=screen")] == 0, 20,
               what="the screens gone from B's gauge")


def test_metrics_access_on_a_real_process(cluster: tuple[Cluster, dict[str, Any]]) -> None:
    deployment, _secrets = cluster
    base = deployment.url("a")
    assert http_status(base + "/metrics") == 200  # loopback, direct
    relayed = {"X-Forwarded-For": "203.0.113.9"}
    assert http_status(base + "/metrics", headers=relayed) == 403
    assert http_status(base + "/metrics",
                       headers={**relayed, "Authorization": f"Bearer {TOKEN}"}) == 200
    assert http_status(base + "/metrics",
                       headers={**relayed, "Authorization": "Bearer wrong-token"}) == 403


def test_the_processes_log_json_lines_without_secrets(
    cluster: tuple[Cluster, dict[str, Any]],
) -> None:
    deployment, secrets = cluster
    req = urllib.request.Request(deployment.url("a") + "/healthz",
                                 headers={"X-Request-ID": "observe-42"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["X-Request-ID"] == "observe-42"
    Screen(deployment.url("a"), secrets["screens"][0]).client.disconnect()

    def lines() -> list[dict[str, Any]]:
        text = deployment.servers["a"].log.read_text(errors="replace")
        # gunicorn's own lines (its arbiter) keep gunicorn's format; ours are JSON.
        return [json.loads(x) for x in text.splitlines() if x.startswith("{")]

    wait_until(lambda: any(e.get("request_id") == "observe-42" for e in lines()), 10,
               what="the access line with the request id")
    found = lines()
    access = next(e for e in found if e.get("request_id") == "observe-42")
    assert (access["logger"], access["path"], access["status"]) == (
        "cunping.access", "/healthz", 200)
    wait_until(lambda: any(e["logger"] == "cunping.screens" and "disconnected" in e["message"]
                           for e in lines()), 10, what="the screen's disconnect line")
    assert all({"time", "level", "logger", "message", "pid"} <= set(e) for e in found)
    text = "\n".join(p.log.read_text(errors="replace") for p in deployment.servers.values())
    for secret in [*secrets["tokens"].values(), *secrets["screens"], "observe-password",
                   TOKEN]:
        assert secret not in text
