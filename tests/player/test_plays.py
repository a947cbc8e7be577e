"""Proof of play: the queue on disk, PLAYS batches acknowledged or sent again with the same id,
the cap, and the loop recording each notice when it leaves the screen."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio

from player import protocol
from player.client import PlayerClient
from player.plays import BATCH_FILE, QUEUE_FILE, PlayQueue
from player.store import Store
from tests.player.conftest import FakeLink, Running, make_alert, make_notice, showing


def play(n: int, code: str = "Ab3xK9") -> dict[str, Any]:
    return {"code": code, "version": 1, "started_at": f"2026-11-22T10:{n // 60 % 60:02d}:"
            f"{n % 60:02d}Z", "seconds": 20}


def test_plays_survive_a_restart_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    q = PlayQueue(tmp_path)
    for n in range(3):
        q.record(play(n))
    q.record({"code": "X", "version": 1, "started_at": "t", "seconds": 0})  # not a play
    assert q.pending() == 3
    q = PlayQueue(tmp_path)  # restart
    batch = q.next_batch()
    assert batch is not None
    assert batch["plays"] == [play(0), play(1), play(2)]  # the local ids are not sent
    assert len(batch["batch"]) <= 40
    # no answer: the same batch, same id, also after a restart
    assert q.next_batch() == batch
    q = PlayQueue(tmp_path)
    assert q.next_batch() == batch
    q.record(play(3))
    assert not q.acknowledged("some-other-batch")
    assert q.acknowledged(batch["batch"])
    assert not (tmp_path / BATCH_FILE).exists()
    nxt = q.next_batch()
    assert nxt is not None and nxt["batch"] != batch["batch"] and nxt["plays"] == [play(3)]
    q.acknowledged(nxt["batch"])
    assert q.next_batch() is None and PlayQueue(tmp_path).pending() == 0


def test_batches_hold_at_most_max_plays(tmp_path: Path) -> None:
    q = PlayQueue(tmp_path)
    for n in range(protocol.MAX_PLAYS + 20):
        q.record(play(n))
    first = q.next_batch()
    assert first is not None and len(first["plays"]) == protocol.MAX_PLAYS
    q.acknowledged(first["batch"])
    second = q.next_batch()
    assert second is not None and len(second["plays"]) == 20


def test_a_crash_between_batch_and_queue_rewrite_counts_nothing_twice(tmp_path: Path) -> None:
    q = PlayQueue(tmp_path)
    for n in range(4):
        q.record(play(n))
    before = (tmp_path / QUEUE_FILE).read_text()
    batch = q.next_batch()
    assert batch is not None
    (tmp_path / QUEUE_FILE).write_text(before)  # as if the rewrite never happened
    q = PlayQueue(tmp_path)
    assert q.pending() == 4
    assert q.next_batch() == batch
    assert q.acknowledged(batch["batch"])
    assert q.next_batch() is None


def test_the_queue_is_capped_and_bad_lines_are_skipped(tmp_path: Path) -> None:
    q = PlayQueue(tmp_path, cap=50)
    for n in range(120):
        q.record(play(n))
    assert q.pending() == 50
    with (tmp_path / QUEUE_FILE).open("a") as f:
        f.write('{"code": "half a li')  # a power cut mid-line
    q = PlayQueue(tmp_path, cap=50)
    assert q.pending() == 50
    batch = q.next_batch()
    assert batch is not None
    assert batch["plays"][0] == play(70) and batch["plays"][-1] == play(119)  # oldest dropped
    lines = (tmp_path / QUEUE_FILE).read_text().splitlines()
    assert len(lines) <= 55


class FakeSio:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def call(self, event: str, data: Any, namespace: str, timeout: float) -> Any:
        assert (event, namespace) == (protocol.PLAYS, protocol.NAMESPACE)
        self.sent.append(json.loads(json.dumps(data)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def link(tmp_path: Path) -> PlayerClient:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="1", size=(1, 1))


def test_client_sends_batches_and_resends_the_same_id_without_an_ack(
        link: PlayerClient) -> None:
    for n in range(3):
        link.record_play(play(n))
    sio = FakeSio(socketio.exceptions.TimeoutError(), {"status": "error"},
                  {"status": "ok", "accepted": 3})
    link.send_plays(sio)  # type: ignore[arg-type]  # no answer
    link.send_plays(sio)  # type: ignore[arg-type]  # refused
    assert link.plays.pending() == 3
    link.send_plays(sio)  # type: ignore[arg-type]
    assert len({s["batch"] for s in sio.sent}) == 1  # the same batch three times
    assert sio.sent[0]["plays"] == [play(0), play(1), play(2)]
    assert link.plays.pending() == 0
    link.send_plays(FakeSio())  # type: ignore[arg-type]  # nothing to send: no call


def test_a_backlog_goes_out_in_several_batches(link: PlayerClient) -> None:
    for n in range(2 * protocol.MAX_PLAYS + 1):
        link.record_play(play(n))
    sio = FakeSio(*[{"status": "ok", "accepted": 1}] * 3)
    link.send_plays(sio)  # type: ignore[arg-type]
    assert [len(s["plays"]) for s in sio.sent] == [protocol.MAX_PLAYS, protocol.MAX_PLAYS, 1]
    assert all(len(s["plays"]) <= protocol.MAX_PLAYS for s in sio.sent)
    assert link.plays.pending() == 0


def test_each_notice_leaving_the_screen_is_a_play(running: Callable[..., Running]) -> None:
    a = make_notice("A", duration_s=1, pinned=True, pages=2)
    b = make_notice("B", duration_s=1)
    link = FakeLink([a, b])
    r = running(link)
    r.wait_frame(showing("B"), timeout=4)
    r.wait_frame(lambda f: f["showing"] == "A", timeout=3, after=3)
    plays = link.plays
    assert [(p["code"], p["version"]) for p in plays[:2]] == [("A", 1), ("B", 1)]
    assert plays[0]["seconds"] == 2  # both pages: one play
    assert plays[1]["seconds"] == 1
    assert plays[0]["started_at"].endswith("Z") and len(plays[0]["started_at"]) == 20
    # an alert ends the play on screen; nothing is recorded while the alert shows
    count = len(plays)
    time.sleep(1.1)
    r.work.put(("alerts", {"alerts": [make_alert("AL1")], "offset": 0.0, "done": None}))
    r.wait_frame(lambda f: f["showing"] == "alert:AL1", timeout=1)
    time.sleep(0.3)
    assert len(link.plays) == count + 1
    assert all(p["code"] in ("A", "B") for p in link.plays)


def test_a_slide_shown_under_a_second_is_no_play(running: Callable[..., Running]) -> None:
    link = FakeLink([make_notice("A", duration_s=3600)])
    r = running(link)
    r.wait_frame(showing("A"), timeout=1)
    r.work.put(("notices", {"notices": [], "revision": 2}))
    r.wait_frame(showing("standby"), timeout=1)
    assert link.plays == []


def test_a_batch_the_server_calls_invalid_is_dropped_not_resent_forever(
        link: PlayerClient, caplog: pytest.LogCaptureFixture) -> None:
    link.record_play(play(1))
    sio = FakeSio({"status": "invalid", "reason": "batch must be a string"},
                  {"status": "ok", "accepted": 1})
    link.send_plays(sio)  # type: ignore[arg-type]
    assert link.plays.pending() == 0
    assert "dropping its 1 plays" in caplog.text
    link.record_play(play(2))
    link.send_plays(sio)  # type: ignore[arg-type]
    assert sio.sent[1]["batch"] != sio.sent[0]["batch"]

