"""The production deployment for real: PostgreSQL, Redis, two gunicorn server processes
(deploy/gunicorn.conf.py) and nginx (deploy/nginx-cunping.conf) in front of them, with real
headless players (`cunping player`) connected to one process or through nginx.

Shown: a notice published through one process's API (or through nginx) reaches a player on the
other process; an alert issued on A is shown and acknowledged by a player on B, and A's API sees
the acknowledgement; `cunping tick` from the command line (no server in that process) publishes
a due notice to a player; revoking a screen on A (or with `cunping screen revoke`) disconnects
its player on B; the dashboard on A hears screens come and go on B; moving a screen on
A while its player is on B gives it its new region's notices and alerts; rate limits are shared
through Redis and X-Forwarded-For is trusted for one proxy only; /metrics is not served through
nginx.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from player import protocol
from tests.conftest import BACKENDS
from tests.deploy.cluster import Cluster, http_status
from tests.e2e.test_screen_e2e import Api
from tests.live import LivePlayer, wait_until
from tests.pg import PostgresServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        "postgres" not in BACKENDS,
        reason="the deployment runs on PostgreSQL, its production database, which "
               "CUNPING_TEST_DATABASES leaves out",
    ),
]

BROWSER = "cunping-scaleout-test/1"
# Two cores are shared by everything: generous, but far below "never".
SHOWN = 30.0

SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "S0", "集群县")
town = regions.create(None, "S1", "集群镇", county)
villages = {code: regions.create(None, code, name, town) for code, name in (
    ("S11", "东村"), ("S12", "西村"), ("S13", "南村"), ("S14", "北村"), ("S15", "上村"),
    ("S16", "下村"))}
admin = users.create(None, "s_admin", "scaleout-password", grants=[(Role.ADMIN, county)])
editor = users.create(None, "s_editor", "scaleout-password", grants=[(Role.EDITOR, county)])
reviewer = users.create(None, "s_reviewer", "scaleout-password",
                        grants=[(Role.REVIEWER, county)])
alerter = users.create(None, "s_alert", "scaleout-password", grants=[(Role.ALERT, county)])
out = {"tokens": {}, "screens": {}, "regions": {c: r.id for c, r in villages.items()}}
for who, user in (("editor", editor), ("reviewer", reviewer), ("alert", alerter)):
    out["tokens"][who] = users.create_token(user, "scaleout")[1]
for name, code in (("b", "S11"), ("nginx", "S11"), ("alert", "S12"), ("tick", "S13"),
                   ("revoked", "S14"), ("moved", "S15"), ("watched", "S13"),
                   ("cli-revoked", "S14")):
    screen, token = screens.provision(None, villages[code], name, width=640, height=360)
    out["screens"][name] = {"token": token, "code": screen.code, "id": screen.id}
import json
print(json.dumps(out))
"""


class Deployment:
    def __init__(self, cluster: Cluster, secrets: dict[str, Any]) -> None:
        self.cluster = cluster
        self.secrets = secrets
        self.screens: dict[str, dict[str, Any]] = secrets["screens"]
        self.regions: dict[str, int] = secrets["regions"]

    def api(self, who: str, via: str) -> Api:
        return Api(self.cluster.url(via), self.secrets["tokens"][who])

    def player(self, folder: Path, screen: str, via: str) -> LivePlayer:
        player = LivePlayer.create(folder / f"player-{screen}-{via}", self.cluster.url(via),
                                   self.screens[screen]["token"], size="640x360")
        player.start()
        return player

    def publish(self, via: str, title: str, target: str,
                publish_at: str | None = None) -> dict[str, Any]:
        editor, reviewer = self.api("editor", via), self.api("reviewer", via)
        body: dict[str, Any] = {"title": title, "body": "请村民相互转告。", "category": "notice",
                                "targets": [target], "duration_s": 5}
        if publish_at:
            body["publish_at"] = publish_at
        notice = editor.call("POST", "/notices", body)
        editor.call("POST", f"/notices/{notice['id']}/submit", {})
        approved = reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
        if publish_at:  # approval released it for its time
            return approved
        return editor.call("POST", f"/notices/{notice['id']}/publish", {})

    def issue_alert(self, via: str, target: str, title: str) -> dict[str, Any]:
        return self.api("alert", via).call("POST", "/alerts", {
            "level": "II", "event": "暴雨", "title": title,
            "text": "未来三小时有强降雨，请远离河道。", "sender_name": "集群县应急管理局",
            "targets": [target]})

    def alert(self, via: str, code: str) -> dict[str, Any]:
        return self.api("alert", via).call("GET", f"/alerts/{code}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory,
               postgres: PostgresServer) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("scaleout")
    # The processes' own schedulers stay out of the way of `cunping tick` (the test of the
    # command line): A runs one pass at start and then every hour, B none.
    cluster = Cluster.create(folder, postgres, {"CUNPING_FEEDBACK_RATE_LIMIT": "3 per hour"})
    try:
        cluster.migrate()  # once, before the processes (deploy/cunping-migrate.service)
        secrets = json.loads(cluster.run_python(SETUP).strip().splitlines()[-1])
        cluster.start_redis()
        cluster.start_server("a", {"CUNPING_SCHEDULER_SECONDS": "3600"})
        cluster.start_server("b", {"CUNPING_SCHEDULER": "0"})
        cluster.start_nginx()
        yield Deployment(cluster, secrets)
    except BaseException:
        for log in cluster.logs():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-100:])
            print(f"\n--- {log.name} ---\n{tail}")
        raise
    finally:
        cluster.stop()


@pytest.fixture
def players(tmp_path: Path) -> Iterator[list[LivePlayer]]:
    started: list[LivePlayer] = []
    yield started
    for player in started:
        player.stop()


def shows(player: LivePlayer, code: str) -> bool:
    return any(f.get("showing") == code for f in player.frames_log())


def shows_alert(player: LivePlayer, code: str) -> bool:
    return any(f.get("alert") == code for f in player.frames_log())


def ready(player: LivePlayer, what: str = "standby") -> None:
    wait_until(lambda: shows(player, what), SHOWN * 2, interval=0.1,
               what=f"{player.log.parent.name} showing {what}")


def in_log(player: LivePlayer, text: str) -> bool:
    return player.log.exists() and text in player.log.read_text(errors="replace")


def admin_session(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", BROWSER)]  # Flask-Login's "strong" sessions check it
    opener.cookie_jar = jar  # type: ignore[attr-defined]
    form = _form(opener, base + "/admin/login")
    form.update({"username": "s_admin", "password": "scaleout-password"})
    opener.open(base + "/admin/login", data=urllib.parse.urlencode(form).encode(),
                timeout=15).read()
    return opener


def _form(opener: urllib.request.OpenerDirector, url: str) -> dict[str, str]:
    """The CSRF token of the page at `url` (and the session cookie, in the opener's jar)."""
    page = opener.open(url, timeout=15).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token is not None, f"no CSRF token on {url}"
    return {"csrf_token": token.group(1)}


# --- the tests -------------------------------------------------------------------------------


def test_a_notice_published_on_one_process_reaches_a_player_on_the_other_and_through_nginx(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    on_b = deployment.player(tmp_path, "b", "b")
    via_nginx = deployment.player(tmp_path, "nginx", "nginx")
    players += [on_b, via_nginx]
    ready(on_b)
    ready(via_nginx)

    first = deployment.publish("a", "东村冬季用水通知", "S11")  # through process A's API
    for player in (on_b, via_nginx):
        wait_until(lambda p=player: shows(p, first["code"]), SHOWN, interval=0.1,
                   what=f"A's notice on {player.log.parent.name}")

    second = deployment.publish("nginx", "东村道路维修通知", "S11")  # through nginx
    for player in (on_b, via_nginx):
        wait_until(lambda p=player: shows(p, second["code"]), SHOWN, interval=0.1,
                   what=f"the notice through nginx on {player.log.parent.name}")

    # The site answers through nginx on PostgreSQL; /metrics only on the processes themselves.
    with urllib.request.urlopen(deployment.cluster.url("nginx") + "/healthz", timeout=10) as r:
        assert json.loads(r.read())["database"] == "postgresql"
    assert http_status(deployment.cluster.url("nginx") + "/metrics") == 404
    assert http_status(deployment.cluster.url("a") + "/metrics") == 200


def test_an_alert_issued_on_a_is_shown_and_acknowledged_on_b(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    on_b = deployment.player(tmp_path, "alert", "b")
    players.append(on_b)
    ready(on_b)

    alert = deployment.issue_alert("a", "S12", "西村暴雨橙色预警")
    code = alert["code"]
    wait_until(lambda: shows_alert(on_b, code), SHOWN, interval=0.1, what="the alert on B")

    def acknowledged() -> dict[str, Any] | None:
        data = deployment.alert("a", code)  # process A's API, reading what B recorded
        return data if data["delivery"]["acknowledged"] == 1 else None

    data = wait_until(acknowledged, SHOWN, interval=0.2, what="the acknowledgement in A's API")
    assert data["delivery"]["targeted"] == 1
    [row] = data["delivery"]["screens"]
    assert row["code"] == deployment.screens["alert"]["code"]
    assert row["acknowledged"] and row["latency_ms"] is not None

    # Cancelled on A: B's screen gives the alert up.
    deployment.api("alert", "a").call("POST", f"/alerts/{code}/cancel", {"reason": "雨停"})
    mark = on_b.frames_log()[-1]["seq"]
    wait_until(lambda: any(f["seq"] > mark and f.get("alert") is None
                           for f in on_b.frames_log()), SHOWN, interval=0.1,
               what="the screen back to its playlist after the cancel")


def test_cunping_tick_on_the_command_line_publishes_a_due_notice_to_a_player(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    on_b = deployment.player(tmp_path, "tick", "b")
    players.append(on_b)
    ready(on_b)

    due = datetime.now(UTC) + timedelta(seconds=3)
    notice = deployment.publish("a", "南村定时通知", "S13",
                                publish_at=due.isoformat(timespec="seconds"))
    assert notice["status"] == "scheduled"
    wait_until(lambda: datetime.now(UTC) > due + timedelta(seconds=1), 10, interval=0.2,
               what="the publish time")
    assert not shows(on_b, notice["code"]), "no server process published it (their "\
        "schedulers are off or hourly here)"

    # A process with no server and no connection: the emit goes through Redis.
    out = deployment.cluster.run_cli("tick")
    assert "changed 1 notices" in out
    wait_until(lambda: shows(on_b, notice["code"]), SHOWN, interval=0.1,
               what="the notice published by `cunping tick` on the player")


def test_revoking_a_screen_on_a_disconnects_its_player_on_b(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    on_b = deployment.player(tmp_path, "revoked", "b")
    players.append(on_b)
    ready(on_b)
    assert not in_log(on_b, "server disconnect")

    base = deployment.cluster.url("a")
    admin = admin_session(base)
    screen_id = deployment.screens["revoked"]["id"]
    form = _form(admin, f"{base}/admin/screens/{screen_id}")
    form.update({"reason": "设备被盗", "confirm": "y"})
    admin.open(f"{base}/admin/screens/{screen_id}/revoke",
               data=urllib.parse.urlencode(form).encode(), timeout=15).read()

    # Told (the event went through Redis to B) and disconnected by B, not by its own next
    # heartbeat's refusal: "server disconnect" is python-socketio's reason for the former.
    wait_until(lambda: in_log(on_b, "token was revoked: 设备被盗"), SHOWN, interval=0.1,
               what="the revocation on the player")
    wait_until(lambda: in_log(on_b, "server disconnect"), SHOWN, interval=0.1,
               what="B closing the revoked player's connection")
    # B answers connects from memory: the revocation reached its memory at once (through
    # Redis), long before its periodic reload — a connect there now is refused as revoked.
    assert refusal(deployment.cluster.url("b"), deployment.screens["revoked"]["token"]) \
        == {"message": "revoked"}


def refusal(url: str, token: str) -> Any:
    """What the server says to a connect with `token` (None: it was accepted)."""
    import socketio

    refused: list[Any] = []
    client = socketio.Client(reconnection=False)

    @client.on("connect_error", namespace=protocol.NAMESPACE)
    def connect_error(data: Any) -> None:
        refused.append(data)

    try:
        client.connect(url, transports=["websocket"], namespaces=[protocol.NAMESPACE],
                       auth={"token": token, "revision": -1, "digest": ""}, wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return refused[0] if refused else "no answer"
    client.disconnect()
    return None


def test_cunping_screen_revoke_on_the_command_line_disconnects_a_player_on_b(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    on_b = deployment.player(tmp_path, "cli-revoked", "b")
    players.append(on_b)
    ready(on_b)
    out = deployment.cluster.run_cli("screen", "revoke", deployment.screens["cli-revoked"]["code"])
    assert "Revoked screen" in out
    wait_until(lambda: in_log(on_b, "token was revoked"), SHOWN, interval=0.1,
               what="the revocation from the command line on the player")
    wait_until(lambda: in_log(on_b, "server disconnect"), SHOWN, interval=0.1,
               what="B closing the connection the command line revoked")


def test_moving_a_screen_on_a_while_its_player_is_on_b(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    there = deployment.publish("a", "下村通知", "S16")
    on_b = deployment.player(tmp_path, "moved", "b")
    players.append(on_b)
    ready(on_b)

    base = deployment.cluster.url("a")
    admin = admin_session(base)
    screen_id = deployment.screens["moved"]["id"]
    form = _form(admin, f"{base}/admin/screens/{screen_id}")
    form.update({"name": "moved", "region": str(deployment.regions["S16"])})
    admin.open(f"{base}/admin/screens/{screen_id}",
               data=urllib.parse.urlencode(form).encode(), timeout=15).read()
    wait_until(lambda: shows(on_b, there["code"]), SHOWN, interval=0.1,
               what="the new region's notice on the moved screen")

    # B delivers alerts for the new region to it (its record of the screen's regions follows).
    alert = deployment.issue_alert("a", "S16", "下村暴雨橙色预警")
    wait_until(lambda: shows_alert(on_b, alert["code"]), SHOWN, interval=0.1,
               what="the new region's alert on the moved screen")
    wait_until(lambda: deployment.alert("a", alert["code"])["delivery"]["acknowledged"] == 1,
               SHOWN, interval=0.2, what="the moved screen's acknowledgement")
    deployment.api("alert", "a").call("POST", f"/alerts/{alert['code']}/cancel", {"reason": "止"})


def test_the_dashboard_on_a_hears_a_screen_come_and_go_on_b(
    deployment: Deployment, players: list[LivePlayer], tmp_path: Path,
) -> None:
    """The live count: a browser's /dashboard connection to A is told when a player connects
    to B and when it leaves (the announcement goes through Redis)."""
    import socketio

    base = deployment.cluster.url("a")
    admin = admin_session(base)
    cookies = "; ".join(f"{c.name}={c.value}" for c in admin.cookie_jar)  # type: ignore[attr-defined]
    heard: list[dict[str, Any]] = []
    browser = socketio.Client(reconnection=False)
    browser.on("presence", heard.append, namespace="/dashboard")
    browser.connect(base, namespaces=["/dashboard"], transports=["websocket"], wait_timeout=15,
                    headers={"Cookie": cookies, "User-Agent": BROWSER})
    code = deployment.screens["watched"]["code"]
    try:
        on_b = deployment.player(tmp_path, "watched", "b")
        players.append(on_b)
        wait_until(lambda: {"screen": code, "online": True} in heard, SHOWN, interval=0.1,
                   what="the dashboard on A hearing the screen connect to B")
        on_b.stop()
        wait_until(lambda: {"screen": code, "online": False} in heard, SHOWN, interval=0.1,
                   what="the dashboard on A hearing the screen leave B")
    finally:
        browser.disconnect()


def test_rate_limits_are_shared_through_redis_and_only_nginx_is_trusted_for_addresses(
    deployment: Deployment,
) -> None:
    """CUNPING_FEEDBACK_RATE_LIMIT is 3 per hour here: three questions from one address, one to
    each process directly and one through nginx with a forged X-Forwarded-For, use it up."""
    notice = deployment.publish("a", "上村意见征集", "S15")

    def send(via: str, headers: dict[str, str] | None = None) -> int:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        url = f"{deployment.cluster.url(via)}/n/{notice['code']}"
        form = _form(opener, url)
        form["website"] = "http://spam.example"  # the honeypot: answered as sent, not stored
        req = urllib.request.Request(url + "/feedback", data=urllib.parse.urlencode(form).encode(),
                                     headers=headers or {})
        try:
            with opener.open(req, timeout=15) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    assert send("a") == 200  # 303 to the notice page, followed
    assert send("b") == 200
    assert send("nginx", {"X-Forwarded-For": "203.0.113.9"}) == 200
    assert send("b") == 429
    assert send("nginx", {"X-Forwarded-For": "198.51.100.7"}) == 429


def test_every_answer_through_nginx_refuses_framing_once(deployment: Deployment) -> None:
    """nginx sends the security headers on its own answers (a 404 for /metrics: the admin's
    whole policy) and on the app's (the app's own policy, once), never a second copy."""
    from server.headers import POLICY

    base = deployment.cluster.url("nginx")
    for path, policy in (("/admin/login", POLICY), ("/metrics", POLICY),
                         ("/n/nope", "script-src 'none'"), ("/healthz", POLICY)):
        try:
            with urllib.request.urlopen(base + path, timeout=10) as resp:
                headers = resp.headers
        except urllib.error.HTTPError as err:
            headers = err.headers
        assert headers.get_all("X-Frame-Options") == ["DENY"], path
        assert headers.get_all("X-Content-Type-Options") == ["nosniff"], path
        assert headers.get_all("Referrer-Policy") == ["same-origin"], path
        [csp] = headers.get_all("Content-Security-Policy")
        assert policy in csp and "frame-ancestors 'none'" in csp, path


def test_the_processes_log_no_errors(deployment: Deployment) -> None:
    """Runs last: nothing above made a server process log an error or a traceback."""
    for name, process in deployment.cluster.servers.items():
        text = process.log.read_text(errors="replace")
        assert "background loops started" in text, name
        marks = (" ERROR ", " CRITICAL ", "[ERROR]", "[CRITICAL]", "Traceback")
        bad = [line for line in text.splitlines() if any(m in line for m in marks)]
        assert not bad, f"server {name}:\n" + "\n".join(bad[:20])
