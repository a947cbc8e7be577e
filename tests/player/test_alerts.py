"""Emergency alerts on the player: ALERTS checks and acknowledgements, the set on disk, the
screen taken over (priority, rotation by level, expiry, cancel), first frame on boot."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from player import app as app_module
from player import client as client_module
from player import protocol
from player.client import PlayerClient, PlayerNamespace
from player.store import Store
from tests.player.conftest import SCREEN, FakeLink, Running, iso, make_alert, make_notice, showing
from tests.player.test_app import closed_port
from tests.player.test_client import drain


@pytest.fixture
def link(tmp_path: Path) -> PlayerClient:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="9.9",
                        size=(1920, 1080))


class Screen:
    """Stands in for the main thread: takes work and confirms alert sets after `delay`."""

    def __init__(self, work: queue.Queue[Any], delay: float = 0.0) -> None:
        self.work = work
        self.delay = delay
        self.items: list[tuple[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                command, payload = self.work.get(timeout=0.05)
            except queue.Empty:
                continue
            self.items.append((command, payload))
            if command == "alerts" and payload.get("done") is not None:
                time.sleep(self.delay)
                payload["done"].set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


@pytest.fixture
def screen(link: PlayerClient) -> Iterator[Screen]:
    s = Screen(link.work)
    yield s
    s.close()


class Sent:
    """Stands in for the Socket.IO client: what the namespace emits."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str | None]] = []
        self.namespaces = {protocol.NAMESPACE: "sid"}

    def emit(self, event: str, data: Any = None, namespace: str | None = None,
             callback: Any = None) -> None:
        self.events.append((event, data, namespace))


def namespace(link: PlayerClient) -> PlayerNamespace:
    ns = PlayerNamespace(link)
    ns.client = Sent()  # type: ignore[assignment]
    return ns


def answer(link: PlayerClient, payload: Any, ns: PlayerNamespace | None = None) -> Any:
    """What the player answers to ALERTS: the ALERTS_ACK it emits, None when it sends none."""
    ns = ns or namespace(link)
    sent: Sent = ns.client  # type: ignore[assignment]
    sent.events.clear()
    ns.on_alerts(payload)
    acks = [d for e, d, n in sent.events if e == protocol.ALERTS_ACK and n == protocol.NAMESPACE]
    assert len(acks) <= 1
    return acks[0] if acks else None


def alerts_event(*alerts: dict[str, Any], server_time: datetime | None = None) -> dict[str, Any]:
    return {"alerts": list(alerts), "server_time": iso(server_time or datetime.now(UTC))}


# -- the network side ---------------------------------------------------------------------


def test_alerts_are_saved_handed_over_and_acknowledged(link: PlayerClient,
                                                       screen: Screen) -> None:
    a, b = make_alert("AL1", version=2), make_alert("AL2", level=3)
    later = datetime.now(UTC) + timedelta(minutes=10)  # the server's clock is 10 min ahead
    ack = answer(link, alerts_event(a, b, server_time=later))
    assert ack == {"have": ["AL1:2", "AL2:1"]}
    saved, offset = link.store.load_alerts()
    assert saved == [a, b]
    assert 590 < offset < 610
    [(_command, payload)] = [i for i in screen.items if i[0] == "alerts"]
    assert payload["alerts"] == [a, b] and payload["done"].is_set()
    assert 590 < payload["offset"] < 610
    assert link.alerts == [a, b]
    assert not link._sync_full  # alerts never touch the notices


def test_the_ack_waits_until_the_screen_shows_the_alert(link: PlayerClient) -> None:
    s = Screen(link.work, delay=0.4)
    try:
        started = time.monotonic()
        ack = answer(link, alerts_event(make_alert("AL1")))
        assert time.monotonic() - started >= 0.4
        assert ack == {"have": ["AL1:1"]}
    finally:
        s.close()


def test_no_confirmation_from_the_screen_still_acks_what_is_saved(
        link: PlayerClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(client_module, "ALERT_SHOWN_TIMEOUT", 0.2)
    ack = answer(link, alerts_event(make_alert("AL1")))
    assert ack == {"have": ["AL1:1"]}
    assert "did not confirm" in caplog.text
    assert link.store.load_alerts()[0][0]["code"] == "AL1"


def test_cancel_is_an_empty_set(link: PlayerClient, screen: Screen) -> None:
    ns = namespace(link)
    assert answer(link, alerts_event(make_alert("AL1")), ns) == {"have": ["AL1:1"]}
    assert answer(link, alerts_event(), ns) == {"have": []}
    assert link.store.load_alerts()[0] == []
    assert [p["alerts"] for c, p in screen.items if c == "alerts"][-1] == []


BAD_ALERTS: list[Any] = [
    None,
    "alerts",
    {"alerts": "AL1"},
    {"alerts": [{"code": "AL1"}]},
    {"alerts": [{**make_alert(), "level": 5}]},
    {"alerts": [{**make_alert(), "text": "字" * (protocol.MAX_ALERT_TEXT + 1)}]},
    {"alerts": [{**make_alert(), "targets": ["x"]}]},
    {"alerts": [make_alert(f"A{i}") for i in range(protocol.MAX_ALERTS + 1)]},
    {"alerts": [{**make_alert(), "title": "长" * 1_000_000}]},  # over 2 MB
]


@pytest.mark.parametrize("payload", BAD_ALERTS)
def test_malformed_alerts_are_ignored_and_not_acknowledged(
        link: PlayerClient, payload: Any, caplog: pytest.LogCaptureFixture) -> None:
    good = make_alert("KEEP")
    link.store.save_alerts([good], 0.0)
    link.alerts = [good]
    assert answer(link, payload) is None
    assert drain(link.work) == []
    assert link.alerts == [good]
    assert link.store.load_alerts()[0] == [good]
    assert "not acknowledged" in caplog.text


def test_unsaved_alerts_are_shown_but_not_acknowledged(
        link: PlayerClient, screen: Screen, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*a: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(link.store, "save_alerts", full)
    assert answer(link, alerts_event(make_alert("AL1"))) is None
    assert [p["alerts"][0]["code"] for c, p in screen.items if c == "alerts"] == ["AL1"]


def test_revoked_screen_clears_alerts(link: PlayerClient, screen: Screen) -> None:
    answer(link, alerts_event(make_alert("AL1")))
    PlayerNamespace(link).on_revoked({"reason": "revoked"})
    assert link.alerts == []
    assert link.store.load_alerts()[0] == []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not any(
            c == "alerts" and p["alerts"] == [] for c, p in screen.items):
        time.sleep(0.02)
    assert any(c == "alerts" and p["alerts"] == [] for c, p in screen.items)


def test_cached_alerts_are_loaded_and_a_corrupt_file_ignored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_alerts([make_alert("AL1")], 12.5)
    link = PlayerClient("http://x", store, queue.Queue(), version="1", size=(1, 1))
    assert [a["code"] for a in link.alerts] == ["AL1"] and link.clock_offset == 12.5
    (tmp_path / "alerts.json").write_text('{"alerts": [{"code": 1}]}')
    assert store.load_alerts() == ([], 0.0)
    (tmp_path / "alerts.json").write_text("{broken")
    assert store.load_alerts() == ([], 0.0)


def test_heartbeat_names_the_alert_on_screen(link: PlayerClient) -> None:
    sent: list[tuple[str, Any]] = []

    class FakeSio:
        def emit(self, event: str, data: Any, namespace: str) -> None:
            sent.append((event, data))

    link.heartbeat(FakeSio())  # type: ignore[arg-type]
    link.alert = "AL1"
    link.heartbeat(FakeSio())  # type: ignore[arg-type]
    assert [d["alert"] for _e, d in sent] == [None, "AL1"]


# -- the screen ------------------------------------------------------------------------------


def alert_frame(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["showing"] == f"alert:{code}"


def put_alerts(r: Running, *alerts: dict[str, Any], offset: float = 0.0) -> threading.Event:
    done = threading.Event()
    r.work.put(("alerts", {"alerts": list(alerts), "offset": offset, "done": done}))
    return done


def test_alert_interrupts_notices_at_once_and_cancel_brings_them_back(
        running: Callable[..., Running]) -> None:
    link = FakeLink([make_notice("A", duration_s=3600)])
    r = running(link)
    first = r.wait_frame(showing("A"), timeout=1)
    sent = time.monotonic()
    done = put_alerts(r, make_alert("AL1", version=3, level=2))
    frame = r.wait_frame(alert_frame("AL1"), timeout=1, after=first["seq"])
    assert time.monotonic() - sent < 1
    assert done.wait(1)
    assert (frame["alert"], frame["level"], frame["version"]) == ("AL1", 2, 3)
    assert link.alert == "AL1" and link.showing is None
    # the alert's QR goes to its page, tagged with this screen
    assert ("alert", "AL1", 3, "http://cunping.test/a/AL1?s=S7", 0, 1) in r.renderer.calls
    put_alerts(r)  # cancelled: the empty set
    back = r.wait_frame(showing("A"), timeout=1, after=frame["seq"])
    assert "alert" not in back
    assert link.alert is None


@pytest.mark.parametrize("situation", ["standby", "pairing", "connecting", "offline"])
def test_alert_outranks_standby_pairing_and_messages(running: Callable[..., Running],
                                                     situation: str) -> None:
    link = FakeLink() if situation == "standby" else FakeLink(token=None, screen=None)
    r = running(link)
    if situation == "pairing":
        r.work.put(("pairing", {"code": "123456", "expires_at": None}))
        r.wait_frame(showing("pairing"), timeout=1)
    if situation == "offline":
        r.work.put(("status", {"state": "offline", "reason": "Connection refused"}))
    r.wait_frame(lambda f: True, timeout=1)
    put_alerts(r, make_alert("AL1"))
    r.wait_frame(alert_frame("AL1"), timeout=1)
    put_alerts(r)
    back = {"standby": "standby", "pairing": "pairing"}.get(situation, "message")
    r.wait_frame(showing(back), timeout=1, after=r.frames()[-1]["seq"])


def test_several_alerts_take_turns_by_level(running: Callable[..., Running],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "ALERT_SECONDS", 0.4)
    now = datetime.now(UTC)
    blue = make_alert("BLUE", level=4, issued_at=now - timedelta(hours=3))
    red_late = make_alert("REDL", level=1, issued_at=now - timedelta(minutes=5))
    red_early = make_alert("REDE", level=1, issued_at=now - timedelta(hours=1))
    link = FakeLink()
    link.alerts = [blue, red_late, red_early]
    r = running(link)
    r.wait_frame(alert_frame("BLUE"), timeout=3)
    order = [f["alert"] for f in r.frames()]
    assert order[:3] == ["REDE", "REDL", "BLUE"]
    assert [f["page"] for f in r.frames()[:3]] == [0, 1, 2]
    assert ("alert", "REDL", 1, "http://cunping.test/a/REDL?s=S7", 1, 3) in r.renderer.calls
    r.wait_frame(lambda f: f["seq"] == 4, timeout=2)
    assert r.frames()[3]["alert"] == "REDE"  # and round again


def test_a_single_alert_just_stays(running: Callable[..., Running],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "ALERT_SECONDS", 0.1)
    link = FakeLink([make_notice("A", duration_s=1)])
    link.alerts = [make_alert("AL1")]
    r = running(link)
    r.wait_frame(alert_frame("AL1"), timeout=1)
    time.sleep(1.5)
    assert [f["showing"] for f in r.frames()] == ["alert:AL1"]  # the notice never came


def test_a_new_alert_is_shown_at_once_then_the_turns_go_on(
        running: Callable[..., Running], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "ALERT_SECONDS", 2.0)
    red = make_alert("RED", level=1)
    link = FakeLink()
    link.alerts = [red]
    r = running(link)
    first = r.wait_frame(alert_frame("RED"), timeout=1)
    put_alerts(r, red, make_alert("YEL", level=3))
    frame = r.wait_frame(alert_frame("YEL"), timeout=1, after=first["seq"])
    r.wait_frame(alert_frame("RED"), timeout=4, after=frame["seq"])
    # an update (new version) of the one not on screen is shown at once too
    latest = r.frames()[-1]["seq"]
    put_alerts(r, red, make_alert("YEL", level=3, version=2))
    r.wait_frame(lambda f: f.get("alert") == "YEL" and f["version"] == 2, timeout=1,
                 after=latest)


def test_alert_expiry_by_the_clock_restores_the_playlist(
        running: Callable[..., Running]) -> None:
    soon = make_alert("SOON", expires_at=datetime.now(UTC) + timedelta(seconds=0.8))
    link = FakeLink([make_notice("A", duration_s=3600)])
    link.alerts = [soon]
    r = running(link)
    first = r.wait_frame(alert_frame("SOON"), timeout=1)
    assert first["seq"] == 1
    r.wait_frame(showing("A"), timeout=2)


def test_an_alert_due_to_start_waits_for_its_time(running: Callable[..., Running]) -> None:
    later = make_alert("LATER", starts_at=datetime.now(UTC) + timedelta(seconds=0.7))
    link = FakeLink()
    r = running(link)
    r.wait_frame(showing("standby"), timeout=1)
    done = put_alerts(r, later)
    assert done.wait(1)  # the set is taken (and acknowledged) before it starts
    assert [f["showing"] for f in r.frames()] == ["standby"]
    r.wait_frame(alert_frame("LATER"), timeout=2)


def test_the_servers_clock_decides(running: Callable[..., Running]) -> None:
    """This box's clock is an hour behind: by the server's time the alert is in force."""
    ahead = datetime.now(UTC) + timedelta(hours=1)
    alert = make_alert("AL1", starts_at=ahead - timedelta(minutes=5),
                       expires_at=ahead + timedelta(minutes=5))
    r = running(FakeLink())
    r.wait_frame(showing("standby"), timeout=1)
    put_alerts(r, alert, offset=0.0)
    time.sleep(0.4)
    assert [f["showing"] for f in r.frames()] == ["standby"]
    put_alerts(r, alert, offset=3600.0)
    r.wait_frame(alert_frame("AL1"), timeout=1)


def test_refused_screen_says_so_even_with_an_alert(running: Callable[..., Running]) -> None:
    link = FakeLink()
    link.alerts = [make_alert("AL1")]
    r = running(link)
    r.wait_frame(alert_frame("AL1"), timeout=1)
    r.work.put(("status", {"state": "refused", "reason": "revoked"}))
    r.wait_frame(showing("message"), timeout=1)


def test_a_renderer_failure_still_shows_the_alert_text(running: Callable[..., Running]) -> None:
    from tests.player.conftest import FakeRenderer

    class BrokenAlerts(FakeRenderer):
        def alert(self, alert: dict[str, Any], qr_url: str, *, index: int = 0,
                  total: int = 1) -> Any:
            raise RuntimeError("renderer bug")

    link = FakeLink()
    link.alerts = [make_alert("AL1")]
    r = running(link, renderer=BrokenAlerts())
    frame = r.wait_frame(alert_frame("AL1"), timeout=1)
    assert frame["level"] == 1
    assert ("message", link.alerts[0]["title"], link.alerts[0]["text"]) in r.renderer.calls


class FakeAudio:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, frozenset[str]]] = []
        self.closed = False

    def update(self, shown: dict[str, Any] | None, active: frozenset[str]) -> None:
        self.calls.append((shown["code"] if shown else None, frozenset(active)))

    def close(self) -> None:
        self.closed = True


def test_sound_follows_the_alert_on_screen(running: Callable[..., Running]) -> None:
    audio = FakeAudio()
    r = running(FakeLink(), audio=audio)
    r.wait_frame(showing("standby"), timeout=1)
    assert set(audio.calls) == {(None, frozenset())}
    put_alerts(r, make_alert("AL1", version=2))
    r.wait_frame(alert_frame("AL1"), timeout=1)
    deadline = time.monotonic() + 1
    while ("AL1", frozenset({"AL1:2"})) not in audio.calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ("AL1", frozenset({"AL1:2"})) in audio.calls
    put_alerts(r)
    r.wait_frame(showing("standby"), timeout=1, after=2)
    assert audio.calls[-1] == (None, frozenset())
    r.close()
    assert audio.closed


def test_cached_alert_is_the_first_frame_on_boot(tmp_path: Path,
                                                 running: Callable[..., Running]) -> None:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    store.save_state(revision=0, screen=SCREEN, county_name="清源县")
    store.save_notices([make_notice("CACHED", duration_s=3600)], 7)
    gone = make_alert("GONE", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    store.save_alerts([gone, make_alert("AL1", level=2)], 0.0)
    work: queue.Queue[Any] = queue.Queue()
    link = PlayerClient(f"http://127.0.0.1:{closed_port()}", store, work, version="1",
                        size=(320, 180))
    r = running(link, work=work, store=store)
    frame = r.wait_frame(lambda f: True, timeout=1)
    assert (frame["seq"], frame["showing"], frame["alert"]) == (1, "alert:AL1", "AL1")
    time.sleep(0.4)  # offline meanwhile: the alert stays
    assert {f["showing"] for f in r.frames()} == {"alert:AL1"}


# -- against a small real Socket.IO server -------------------------------------------------


def test_alerts_ack_frames_and_plays_over_a_real_connection(
        tmp_path: Path, running: Callable[..., Running],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import io

    import socketio
    from PIL import Image
    from werkzeug.serving import make_server

    monkeypatch.setattr(client_module, "PLAYS_FIRST_SECONDS", 0.0)
    monkeypatch.setattr(protocol, "PLAYS_SECONDS", 0.3)
    acks: list[Any] = []
    got: dict[str, list[Any]] = {"frame": [], "plays": []}
    sids: list[str] = []
    sio = socketio.Server(async_mode="threading")

    class Ns(socketio.Namespace):
        def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
            sids.append(sid)
            self.emit(protocol.WELCOME, {"screen": SCREEN, "county_name": "清源县"}, to=sid)
            self.emit(protocol.SNAPSHOT, {"revision": 4,
                                          "notices": [make_notice("LIVE", duration_s=1)]},
                      to=sid)

        def on_frame(self, sid: str, data: Any) -> dict[str, str]:
            got["frame"].append(data)
            return {"status": "ok"}

        def on_plays(self, sid: str, data: Any) -> dict[str, Any]:
            got["plays"].append(data)
            return {"status": "ok", "accepted": len(data["plays"])}

        def on_heartbeat(self, sid: str, data: Any) -> None:
            pass

        def on_alerts_ack(self, sid: str, data: Any) -> None:
            acks.append(data)

    sio.register_namespace(Ns(protocol.NAMESPACE))
    http = make_server("127.0.0.1", 0, socketio.WSGIApp(sio), threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        store = Store(tmp_path / "data")
        store.set_token("token-abcdefgh")
        work: queue.Queue[Any] = queue.Queue()
        link = PlayerClient(f"http://127.0.0.1:{http.server_port}", store, work, version="1",
                            size=(320, 180))
        r = running(link, work=work, store=store)
        r.wait_frame(showing("LIVE"), timeout=10)
        time.sleep(1.3)  # on screen long enough to count as played
        sio.emit(protocol.ALERTS, alerts_event(make_alert("AL1", version=2)), to=sids[0],
                 namespace=protocol.NAMESPACE)
        r.wait_frame(alert_frame("AL1"), timeout=2)
        deadline = time.monotonic() + 5
        while not acks and time.monotonic() < deadline:
            time.sleep(0.02)
        assert acks == [{"have": ["AL1:2"]}]
        sio.emit(protocol.SCREENSHOT, {"request": "req-1"}, to=sids[0],
                 namespace=protocol.NAMESPACE)
        while not got["frame"] and time.monotonic() < deadline + 5:
            time.sleep(0.02)
        [frame] = got["frame"]
        assert (frame["request"], frame["showing"]) == ("req-1", "alert:AL1")
        with Image.open(io.BytesIO(base64.b64decode(frame["image"]))) as img:
            assert img.format == "JPEG" and img.size == (frame["width"], frame["height"])
        # the LIVE notice left the screen when the alert came: one play, sent with an ack
        while not got["plays"] and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        assert got["plays"][0]["plays"][0]["code"] == "LIVE"
        while link.plays.pending() and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        assert link.plays.pending() == 0
    finally:
        http.shutdown()
        thread.join(timeout=5)
