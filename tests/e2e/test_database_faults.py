"""A real `cunping serve` (gevent) on a PostgreSQL of its own that stops answering or goes away.

- Frozen (SIGSTOP on the postmaster and its backends: TCP still accepts, nothing answers):
  /healthz says which part is down with a 503 within about 2 s, a page that needs the database
  answers 503 within the configured limits, the rest of the process keeps answering meanwhile,
  and after SIGCONT everything works again.
- Gone (shut down): the background loops log the outage once each, not a traceback a second,
  and say when the database is back.

The PostgreSQL is started for each test (tests/pg.py), never the session's shared one.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import socketio

from player import protocol
from tests.conftest import BACKENDS
from tests.live import LiveServer, wait_until
from tests.pg import PostgresServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        "postgres" not in BACKENDS,
        reason="the faults are PostgreSQL's (a server process that stops or goes away), "
               "which CUNPING_TEST_DATABASES leaves out",
    ),
]

PASSWORD = "faults-password"
SETUP = """
from server.models import Role
from server.services import regions, screens, users
county = regions.create(None, "F0", "故障县")
village = regions.create(None, "F11", "故障村", regions.create(None, "F1", "故障镇", county))
admin = users.create(None, "f_admin", "faults-password", grants=[(Role.ADMIN, county)])
out = {"token": users.create_token(admin, "faults")[1],
       "screen": screens.provision(None, village, "屏")[1]}
import json
print(json.dumps(out))
"""
# Short limits, so the test is quick; what is tested is that the configured ones hold.
LIMITS = {"CUNPING_DB_CONNECT_TIMEOUT": "2", "CUNPING_DB_STATEMENT_TIMEOUT": "3",
          "CUNPING_DB_POOL_TIMEOUT": "2"}
ANSWER_GRACE = 2  # server/database.py


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float
    headers: dict[str, str]

    def json(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


def fetch(url: str, opener: urllib.request.OpenerDirector | None = None,
          headers: dict[str, str] | None = None, timeout: float = 30) -> Answer:
    request = urllib.request.Request(url, headers=headers or {})
    started = time.monotonic()
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=timeout) as resp:
            return Answer(resp.status, resp.read(), time.monotonic() - started,
                          dict(resp.headers))
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.read(), time.monotonic() - started, dict(err.headers))


@dataclass
class Site:
    pg: PostgresServer
    server: LiveServer
    token: str
    screen_token: str
    frozen: list[int] = field(default_factory=list)  # processes SIGSTOPped, thawed at the end

    def admin(self) -> urllib.request.OpenerDirector:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(self.server.url + "/admin/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert token is not None
        form = urllib.parse.urlencode({"username": "f_admin", "password": PASSWORD,
                                       "csrf_token": token.group(1)}).encode()
        opener.open(self.server.url + "/admin/login", data=form, timeout=10).read()
        return opener

    def log_since(self, offset: int) -> str:
        return self.server.log.read_bytes()[offset:].decode(errors="replace")

    def log_size(self) -> int:
        return self.server.log.stat().st_size


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    pg = PostgresServer.start()  # this test's own: it will be stopped or frozen
    server: LiveServer | None = None
    site: Site | None = None
    try:
        server = LiveServer.create(tmp_path / "server", demo=False,
                                   extra_env={"DATABASE_URL": pg.fresh_database(), **LIMITS})
        made = json.loads(server.run_python(SETUP).strip().splitlines()[-1])
        server.start()
        site = Site(pg, server, made["token"], made["screen"])
        yield site
    finally:
        if site is not None:
            pg.thaw(site.frozen)  # whatever a failed test left stopped
        if server is not None:
            server.stop()
        pg.stop()


def test_a_frozen_database_costs_seconds_and_a_503_not_the_process(site: Site) -> None:
    base = site.server.url
    admin = site.admin()
    api = {"Authorization": f"Bearer {site.token}", "Accept": "application/json"}
    assert fetch(base + "/admin/", admin).status == 200
    assert fetch(base + "/api/v1/notices", headers=api).status == 200

    site.frozen.extend(site.pg.freeze())
    began = time.monotonic()

    health = fetch(base + "/healthz")
    assert health.status == 503 and health.seconds < 2.5, (health.status, health.seconds)
    assert health.json()["status"] == "unavailable"
    assert "database" in health.json()["down"]  # type: ignore[operator]
    assert health.headers.get("Retry-After")

    # A page that needs the database, while the process keeps serving what does not.
    pages: dict[str, Answer] = {}
    waiting = threading.Thread(target=lambda: pages.update(admin=fetch(base + "/admin/", admin)))
    waiting.start()
    time.sleep(0.2)  # the page is now waiting on the database
    static = fetch(base + "/p/static/public.css")
    metrics = fetch(base + "/metrics")
    assert static.status == 200 and static.seconds < 1, static.seconds
    assert metrics.status == 200 and metrics.seconds < 1, metrics.seconds
    assert not pages, "the admin page answered before the database's limits could matter"
    waiting.join(timeout=30)
    page = pages["admin"]
    limit = 3 + ANSWER_GRACE + 2 + 1  # statement + grace + a new connection + slack
    assert page.status == 503 and page.seconds < limit, (page.status, page.seconds)
    assert "数据库暂时不可用" in page.body.decode()
    assert page.headers.get("Retry-After")

    call = fetch(base + "/api/v1/notices", headers=api)
    assert call.status == 503 and call.seconds < limit, (call.status, call.seconds)
    assert call.json()["error"]["unavailable"] == "database"  # type: ignore[index]

    health = fetch(base + "/healthz")  # again: a new probe connection, libpq's 2 s at most
    assert health.status == 503 and health.seconds < 3, (health.status, health.seconds)
    frozen_for = time.monotonic() - began

    site.pg.thaw(site.frozen)
    wait_until(lambda: fetch(base + "/healthz").status == 200, 10, interval=0.1,
               what="/healthz 200 after SIGCONT")
    assert fetch(base + "/admin/", admin).status == 200
    assert fetch(base + "/api/v1/notices", headers=api).status == 200
    log = site.server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "database unavailable on GET /admin/" in log
    print(f"frozen for {frozen_for:.1f} s; admin page 503 after {page.seconds:.1f} s, "
          f"/healthz 503 after {health.seconds:.1f} s")


class Screen:
    """A screen's connection sending heartbeats, as a player does."""

    def __init__(self, base: str, token: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.client.on(protocol.ALERTS, lambda data: {"have": []}, namespace=protocol.NAMESPACE)
        self.client.connect(base, namespaces=[protocol.NAMESPACE], transports=["websocket"],
                            auth={"token": token, "revision": 0, "digest": ""},
                            wait_timeout=20)

    def heartbeat(self) -> None:
        self.client.emit(protocol.HEARTBEAT, {"showing": None, "revision": 0, "digest": "",
                                              "version": "faults", "uptime_s": 1,
                                              "alert": None}, namespace=protocol.NAMESPACE)


def test_a_dead_database_is_logged_once_per_loop_and_its_return_too(site: Site) -> None:
    screen = Screen(site.server.url, site.screen_token)
    try:
        screen.heartbeat()
        start = site.log_size()
        site.pg.halt()
        halted = time.monotonic()
        # Ten seconds without the database, heartbeats pending all along: before, this wrote
        # a traceback every second (dispatcher) and every two (heartbeat writer).
        while time.monotonic() - halted < 10:
            screen.heartbeat()
            time.sleep(1)
        outage = site.log_since(start)
        lines = [line for line in outage.splitlines() if line.strip()]
        assert "Traceback" not in outage, outage[-3000:]
        assert len(lines) <= 6 and len(outage) < 2000, outage
        unavailable = [line for line in lines if "database unavailable:" in line]
        assert any("alert dispatcher" in line for line in unavailable), outage
        assert any("heartbeat writer" in line for line in unavailable), outage
        assert all("retrying with back-off" in line for line in unavailable)

        site.pg.restart()
        wait_until(lambda: "heartbeat writer: database available again after"
                   in site.log_since(start), 40, interval=0.2,
                   what="the heartbeat writer saying the database is back")
        wait_until(lambda: "alert dispatcher: database available again after"
                   in site.log_since(start), 40, interval=0.2,
                   what="the alert dispatcher saying the database is back")
        assert fetch(site.server.url + "/healthz").status == 200
        print(site.log_since(start))
    finally:
        screen.client.disconnect()
