"""The network side: payload checks, the notice set on disk, work handed to the main thread.

Handlers are fed directly (no server); one test runs a small real Socket.IO server to check
the connect, refuse, pair and reconnect cycle."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from werkzeug.serving import make_server

from player import client as client_module
from player import protocol
from player.client import PlayerClient, PlayerNamespace, backoff, refusal_reason
from player.store import Store
from tests.player.conftest import make_notice

WELCOME = {"screen": {"code": "S7", "name": "前王庄村村委会", "region_chain": [1, 2, 3],
                      "width": 1920, "height": 1080, "orientation": "landscape",
                      "public_url": "http://cunping.test/s/S7"},
           "county_name": "清源县", "server_time": "2026-11-22T10:00:00Z", "revision": 4}


def drain(work: queue.Queue[Any]) -> list[tuple[str, Any]]:
    items = []
    while True:
        try:
            items.append(work.get_nowait())
        except queue.Empty:
            return items


@pytest.fixture
def link(tmp_path: Path) -> PlayerClient:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="9.9",
                        size=(1920, 1080))


def test_snapshot_is_saved_and_handed_over(link: PlayerClient) -> None:
    ns = PlayerNamespace(link)
    notices = [make_notice("A"), make_notice("B")]
    ns.on_snapshot({"revision": 5, "notices": notices})
    [(command, payload)] = drain(link.work)
    assert command == "notices"
    assert payload == {"notices": notices, "revision": 5}
    assert link.store.load_notices() == notices
    assert link.store.state()["revision"] == 5
    auth = link.auth()
    assert auth["token"] == "token-abcdefgh"
    assert auth["revision"] == 5
    assert auth["digest"] == protocol.digest(notices)
    assert (auth["width"], auth["height"], auth["version"]) == (1920, 1080, "9.9")


def test_deltas_upsert_and_remove(link: PlayerClient) -> None:
    ns = PlayerNamespace(link)
    ns.on_snapshot({"revision": 5, "notices": [make_notice("A")]})
    ns.on_notice({"revision": 6, "op": "upsert", "notice": make_notice("B")})
    ns.on_notice({"revision": 7, "op": "upsert", "notice": make_notice("A", version=2)})
    ns.on_notice({"revision": 8, "op": "remove", "notice": {"code": "B"}})
    items = drain(link.work)
    assert [c for c, _ in items] == ["notices"] * 4
    last = items[-1][1]
    assert [(n["code"], n["version"]) for n in last["notices"]] == [("A", 2)]
    assert last["revision"] == 8
    assert link.store.state()["revision"] == 8
    assert not link._sync_full and not link._sync_soon  # contiguous: no resync needed


def test_gap_in_revisions_is_normal(link: PlayerClient) -> None:
    """Revisions are global: a screen sees gaps; the digest check catches real misses."""
    ns = PlayerNamespace(link)
    ns.on_snapshot({"revision": 5, "notices": []})
    ns.on_notice({"revision": 9, "op": "upsert", "notice": make_notice("A")})
    assert link.revision == 9
    assert not link._sync_soon and not link._sync_full


def test_stale_upsert_does_not_go_back_a_version(link: PlayerClient) -> None:
    ns = PlayerNamespace(link)
    ns.on_snapshot({"revision": 5, "notices": [make_notice("A", version=3)]})
    drain(link.work)
    ns.on_notice({"revision": 6, "op": "upsert", "notice": make_notice("A", version=2)})
    assert link.notices["A"]["version"] == 3
    assert drain(link.work) == []


BAD_PAYLOADS: list[tuple[str, Any]] = [
    ("on_snapshot", None),
    ("on_snapshot", "hello"),
    ("on_snapshot", {"revision": "7", "notices": []}),
    ("on_snapshot", {"revision": 7, "notices": [{"code": "A"}]}),
    ("on_snapshot", {"revision": 7, "notices": [make_notice("A")] * (protocol.MAX_NOTICES + 1)}),
    ("on_notice", {"revision": 7, "op": "explode", "notice": make_notice("A")}),
    ("on_notice", {"revision": 7, "op": "upsert", "notice": {**make_notice("A"),
                                                             "title": "长" * 201}}),
    ("on_notice", {"revision": 7, "op": "upsert",
                   "notice": {**make_notice("A"), "blocks": [{"type": "video"}]}}),
    ("on_notice", {"revision": 7, "op": "remove", "notice": None}),
    ("on_notice", [1, 2, 3]),
    ("on_welcome", {"screen": "S7"}),
    ("on_welcome", {"screen": {"code": "S7", "region_chain": ["x"]}}),
    ("on_pairing", {"code": 123456}),
    ("on_paired", {"token": ""}),
]


@pytest.mark.parametrize(("handler", "payload"), BAD_PAYLOADS)
def test_malformed_payload_is_ignored_and_a_full_resync_requested(
        link: PlayerClient, handler: str, payload: Any, caplog: pytest.LogCaptureFixture) -> None:
    ns = PlayerNamespace(link)
    ns.on_snapshot({"revision": 5, "notices": [make_notice("KEEP")]})
    drain(link.work)
    getattr(ns, handler)(payload)
    assert drain(link.work) == []  # nothing reaches the screen
    assert list(link.notices) == ["KEEP"]  # last good content kept
    assert link.revision == 5
    assert [n["code"] for n in link.store.load_notices() or []] == ["KEEP"]
    assert link._sync_full
    assert "ignoring malformed" in caplog.text


def test_oversized_payload_is_ignored(link: PlayerClient,
                                      caplog: pytest.LogCaptureFixture) -> None:
    huge = make_notice("BIG")
    huge["blocks"] = [{"type": "paragraph", "runs": [{"text": "字" * 19_000, "bold": False}]}
                      for _ in range(40)]  # each block is fine, the whole is over 2 MB
    PlayerNamespace(link).on_snapshot({"revision": 9, "notices": [huge]})
    assert drain(link.work) == []
    assert link.revision == -1
    assert link._sync_full
    assert "oversized" in caplog.text


def test_full_resync_sends_revision_minus_one(link: PlayerClient) -> None:
    sent: list[tuple[str, Any]] = []

    class FakeSio:
        def call(self, event: str, data: Any, namespace: str, timeout: float) -> Any:
            sent.append((event, data))
            return {"status": "snapshot", "revision": 3, "notices": [make_notice("S")]}

    PlayerNamespace(link).on_snapshot({"revision": 5, "notices": []})
    drain(link.work)
    link.request_sync(full=True)
    link.sync(FakeSio())  # type: ignore[arg-type]
    assert sent == [(protocol.SYNC, {"revision": -1, "digest": protocol.digest([])})]
    # a snapshot in the ack is applied like the event
    assert [c for c, _ in drain(link.work)] == ["notices"]
    assert list(link.notices) == ["S"]


def test_welcome_is_saved_and_handed_over(link: PlayerClient) -> None:
    PlayerNamespace(link).on_welcome(WELCOME)
    [(command, payload)] = drain(link.work)
    assert command == "welcome"
    assert payload["screen"]["region_chain"] == [1, 2, 3]
    assert payload["county_name"] == "清源县"
    state = link.store.state()
    assert state["screen"]["code"] == "S7" and state["county_name"] == "清源县"


def test_pairing_then_paired_keeps_the_token(tmp_path: Path) -> None:
    store = Store(tmp_path)
    link = PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="1",
                        size=(1280, 720))
    auth = link.auth()
    assert "token" not in auth
    assert auth["pairing"] == store.pairing_secret()
    ns = PlayerNamespace(link)
    ns.on_pairing({"code": "123456", "expires_at": "2099-01-01T00:00:00Z"})
    assert drain(link.work) == [("pairing", {"code": "123456",
                                             "expires_at": "2099-01-01T00:00:00Z"})]
    ns.on_paired({"token": "new-token-123456"})
    assert store.token() == "new-token-123456"
    assert link.auth()["token"] == "new-token-123456"
    assert link._reconnect


def test_config_token_wins_over_the_stored_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.set_token("paired-token-1")
    link = PlayerClient("http://x", store, queue.Queue(), version="1", size=(1, 1),
                        config_token="provisioned-token")
    assert link.auth()["token"] == "provisioned-token"


def test_revoked_is_shown_and_the_token_forgotten(link: PlayerClient) -> None:
    PlayerNamespace(link).on_snapshot({"revision": 5, "notices": [make_notice("A")]})
    drain(link.work)
    PlayerNamespace(link).on_revoked({"reason": "revoked"})
    assert drain(link.work) == [("notices", {"notices": [], "revision": -1}),
                                ("alerts", {"alerts": [], "offset": 0.0, "done": None}),
                                ("status", {"state": "refused", "reason": "revoked"})]
    assert link.store.load_notices() == []  # nothing of the county's left on screen or disk
    assert link.store.token() is None
    assert "pairing" in link.auth()  # next connect asks to be paired again


def test_revoked_config_token_is_kept(tmp_path: Path) -> None:
    link = PlayerClient("http://x", Store(tmp_path), queue.Queue(), version="1", size=(1, 1),
                        config_token="provisioned-token")
    PlayerNamespace(link).on_revoked({"reason": "revoked"})
    assert link.auth()["token"] == "provisioned-token"  # an operator must change the file


def test_nothing_cached_sends_an_empty_digest(link: PlayerClient) -> None:
    assert (link.auth()["revision"], link.auth()["digest"]) == (-1, "")


def test_corrupt_cache_starts_from_revision_minus_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_state(revision=12, screen=None, county_name=None)
    (tmp_path / "notices.json").write_text("{broken")
    link = PlayerClient("http://x", store, queue.Queue(), version="1", size=(1, 1))
    assert link.revision == -1 and link.notices == {}


def test_helpers() -> None:
    for attempt in range(30):
        delay = backoff(attempt)
        assert 0.5 <= delay <= client_module.BACKOFF_MAX
    assert backoff(20) >= client_module.BACKOFF_MAX / 2
    assert refusal_reason({"message": "unknown token"}) == "unknown token"
    assert refusal_reason({"message": "x", "data": {"reason": "revoked"}}) == "revoked"
    assert refusal_reason("text") == "text"
    assert refusal_reason(None) == "连接被拒绝"


def test_unreachable_server_reports_offline_and_retries(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "backoff", lambda *a: 0.05)
    link = PlayerClient("http://127.0.0.1:9", Store(tmp_path), queue.Queue(), version="1",
                        size=(1, 1))
    attempts = []
    real = link._make_client

    def counting() -> socketio.Client:
        attempts.append(1)
        return real()

    link.client_factory = counting
    link.start()
    try:
        command, payload = link.work.get(timeout=10)
        assert command == "status" and payload["state"] == "offline"
        deadline = time.monotonic() + 10
        while len(attempts) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(attempts) >= 3  # keeps trying
    finally:
        link.stop()


# -- against a small real Socket.IO server --------------------------------------------------


class FakeServer:
    """A "/player" namespace that knows one token, pairs one box and refuses the rest."""

    def __init__(self) -> None:
        self.sio = socketio.Server(async_mode="threading")
        self.tokens = {"good-token-123"}
        self.events: list[tuple[str, Any]] = []
        self.pair_sid: str | None = None
        server = self

        class Ns(socketio.Namespace):
            def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
                server.events.append(("connect", auth))
                if isinstance(auth, dict) and auth.get("pairing"):
                    server.pair_sid = sid
                    self.emit(protocol.PAIRING, {"code": "654321", "expires_at": None}, to=sid)
                    return
                if not isinstance(auth, dict) or auth.get("token") not in server.tokens:
                    raise socketio.exceptions.ConnectionRefusedError("unknown token")
                self.emit(protocol.WELCOME, WELCOME, to=sid)
                self.emit(protocol.SNAPSHOT, {"revision": 4, "notices": [make_notice("LIVE")]},
                          to=sid)

            def on_sync(self, sid: str, data: Any) -> dict[str, str]:
                server.events.append(("sync", data))
                return {"status": "current"}

            def on_heartbeat(self, sid: str, data: Any) -> None:
                server.events.append(("heartbeat", data))

        self.sio.register_namespace(Ns(protocol.NAMESPACE))
        self.http = make_server("127.0.0.1", 0, socketio.WSGIApp(self.sio), threaded=True)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def pair(self) -> None:
        self.tokens.add("paired-token-456")
        assert self.pair_sid is not None
        self.sio.emit(protocol.PAIRED, {"token": "paired-token-456"}, to=self.pair_sid,
                      namespace=protocol.NAMESPACE)

    def close(self) -> None:
        self.http.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def wait_for(work: queue.Queue[Any], want: Callable[[str, Any], bool],
             timeout: float = 10) -> list[tuple[str, Any]]:
    """Collect work until an item matches; fails after `timeout`."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = work.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(item)
        if want(*item):
            return seen
    raise AssertionError(f"not seen within {timeout} s; got {seen}")


def test_rejoin_makes_the_player_connect_again(
    tmp_path: Path, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "backoff", lambda *a: 0.05)
    link = PlayerClient(fake_server.url, Store(tmp_path), queue.Queue(), version="1",
                        size=(1280, 720), config_token="good-token-123")
    link.start()
    try:
        wait_for(link.work, lambda c, p: c == "welcome")
        fake_server.sio.emit(protocol.REJOIN, {"reason": "moved"}, namespace=protocol.NAMESPACE)
        deadline = time.monotonic() + 10
        while sum(e == "connect" for e, _ in fake_server.events) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(e == "connect" for e, _ in fake_server.events) >= 2
    finally:
        link.stop()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_busy_server_is_retried_after_its_retry_after_with_jitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """A saturated server answers the handshake with 503, Retry-After and a ticket for the
    slot (over WebSocket the headers, over long-polling the JSON body): the player waits at
    least that long and brings the ticket back on its next handshake."""
    handshakes: list[str] = []

    def busy(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        handshakes.append(environ.get("QUERY_STRING", ""))
        ticket = f"t{len(handshakes)}.abc"
        body = json.dumps({"message": protocol.BUSY, "retry_after": 7,
                           "ticket": ticket}).encode()
        start_response("503 Service Unavailable", [
            ("Retry-After", "7"), ("Content-Type", "application/json"),
            (protocol.TICKET_HEADER, ticket), ("Content-Length", str(len(body)))])
        return [body]

    http = make_server("127.0.0.1", 0, busy, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    hints: list[float] = []

    def fake_delay(retry_after: float) -> float:
        hints.append(retry_after)
        return 0.05

    monkeypatch.setattr(client_module, "busy_delay", fake_delay)
    link = PlayerClient(f"http://127.0.0.1:{http.server_port}", Store(tmp_path), queue.Queue(),
                        version="1", size=(1280, 720), config_token="busy-token-789")
    if transport == "polling":  # as after two failed websocket attempts
        monkeypatch.setattr(link, "client_factory", polling_only(link.client_factory))
    link.start()
    try:
        seen = wait_for(link.work, lambda c, p: c == "status" and p["state"] == "offline"
                        and p["reason"] == protocol.BUSY)
        assert not any(c == "status" and p["state"] == "refused" for c, p in seen)
        deadline = time.monotonic() + 5
        while len(hints) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        link.stop()
        http.shutdown()
    assert hints[:3] == [7.0, 7.0, 7.0]
    assert all(f"transport={transport}" in q for q in handshakes)
    # The first handshake has no ticket; each later one carries the one its refusal gave.
    assert "ticket=" not in handshakes[0]
    for n, query in enumerate(handshakes[1:3], start=1):
        assert f"{protocol.TICKET_PARAM}=t{n}.abc" in query.split("&")


def polling_only(factory: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        sio = factory()
        connect = sio.connect

        def connect_polling(*args: Any, **kwargs: Any) -> Any:
            kwargs["transports"] = ["polling"]
            return connect(*args, **kwargs)

        sio.connect = connect_polling
        return sio

    return make


def test_busy_delay_never_comes_back_before_the_hint() -> None:
    delays = [client_module.busy_delay(8) for _ in range(200)]
    assert all(8 <= d <= 8 * (1 + client_module.BUSY_JITTER) for d in delays)
    assert max(delays) - min(delays) > 1  # spread, not one moment for everybody
    assert client_module.busy_delay(0) >= 1
    assert client_module.busy_delay(10**9) <= protocol.MAX_RETRY_AFTER * 1.25


def test_refused_then_pairing_then_paired(tmp_path: Path, fake_server: FakeServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "backoff", lambda *a: 0.1)
    store = Store(tmp_path)
    link = PlayerClient(fake_server.url, store, queue.Queue(), version="1", size=(1280, 720),
                        config_token="bad-token-000")
    link.start()
    try:
        wait_for(link.work, lambda c, p: c == "status" and p["state"] == "refused"
                 and p["reason"] == "unknown token")
    finally:
        link.stop()

    link = PlayerClient(fake_server.url, store, queue.Queue(), version="1", size=(1280, 720))
    link.start()
    try:
        wait_for(link.work, lambda c, p: c == "pairing" and p["code"] == "654321")
        fake_server.pair()
        wait_for(link.work, lambda c, p: c == "welcome")
        seen = wait_for(link.work, lambda c, p: c == "notices")
        assert seen[-1][1]["revision"] == 4
        assert store.token() == "paired-token-456"
        # the reconnect used the new token, and a heartbeat followed
        deadline = time.monotonic() + 5
        while not any(e == "heartbeat" for e, _ in fake_server.events) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        heartbeat = next(d for e, d in fake_server.events if e == "heartbeat")
        assert heartbeat["revision"] == 4 and heartbeat["version"] == "1"
        assert any(e == "connect" and d.get("token") == "paired-token-456"
                   for e, d in fake_server.events)
        link.request_sync(full=True)
        deadline = time.monotonic() + 5
        while not any(e == "sync" for e, _ in fake_server.events) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("sync", {"revision": -1, "digest": protocol.digest(link.notices.values())}) \
            in fake_server.events
    finally:
        link.stop()


def test_welcome_without_chain_or_public_url(link: PlayerClient) -> None:
    PlayerNamespace(link).on_welcome({"screen": {"code": "S9", "name": "x"},
                                      "county_name": "清源县"})
    [(command, payload)] = drain(link.work)
    assert command == "welcome"
    assert payload["screen"]["public_url"] == "http://127.0.0.1:9/s/S9"
    # the residents' address is the one in the notices' URLs when there are notices
    PlayerNamespace(link).on_snapshot({"revision": 1, "notices": [make_notice("A")]})
    PlayerNamespace(link).on_welcome({"screen": {"code": "S9", "name": "x"}})
    assert drain(link.work)[-1][1]["screen"]["public_url"] == "http://cunping.test/s/S9"
    assert payload["screen"].get("region_chain") is None  # no filter: trust the server


def test_sync_ack_current_adopts_the_servers_revision(link: PlayerClient) -> None:
    class FakeSio:
        def __init__(self, ack: Any) -> None:
            self.ack = ack

        def call(self, event: str, data: Any, namespace: str, timeout: float) -> Any:
            return self.ack

    PlayerNamespace(link).on_snapshot({"revision": 5, "notices": [make_notice("A")]})
    drain(link.work)
    link.sync(FakeSio({"status": "current", "revision": 11}))  # type: ignore[arg-type]
    assert link.revision == 11 and link.store.state()["revision"] == 11
    link.sync(FakeSio({"status": "current", "revision": 3}))  # type: ignore[arg-type]
    assert link.revision == 11  # never backwards
    link.sync(FakeSio({"status": "refused"}))  # type: ignore[arg-type]
    assert drain(link.work)[-1] == ("status", {"state": "refused", "reason": "refused"})
    assert link._reconnect
