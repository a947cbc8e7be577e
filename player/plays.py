"""Proof of play: the slides a screen showed, queued on disk until the server confirms them.

The main thread records a Play (protocol docstring) each time a notice leaves the screen; the
network thread sends them in PLAYS batches. A batch is written to disk before it is sent and
leaves the queue only when the server acknowledges it with status "ok"; a lost acknowledgement
means the same batch, with the same id, is sent again (the server counts a batch once).

Files in the data folder (every rewrite atomic, see player.store):

    plays.jsonl        the queued plays, one JSON object a line, oldest first; each carries a
                       local "id" so a crash between taking a batch and rewriting this file
                       does not count a play twice
    plays-batch.json   {"batch": id, "plays": [...]}: the batch in flight, if any

The queue keeps at most `cap` plays (a box offline for weeks drops its oldest plays first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from player import protocol
from player.store import atomic_write

log = logging.getLogger(__name__)

QUEUE_FILE = "plays.jsonl"
BATCH_FILE = "plays-batch.json"
MAX_QUEUED = 20_000


def check_play(play: Any) -> bool:
    return (isinstance(play, dict) and isinstance(play.get("code"), str)
            and 0 < len(play["code"]) <= 16
            and isinstance(play.get("version"), int) and not isinstance(play["version"], bool)
            and isinstance(play.get("started_at"), str) and len(play["started_at"]) <= 40
            and isinstance(play.get("seconds"), int) and not isinstance(play["seconds"], bool)
            and play["seconds"] >= 1)


def _public(play: dict[str, Any]) -> dict[str, Any]:
    return {k: play[k] for k in ("code", "version", "started_at", "seconds")}


class PlayQueue:
    """Thread-safe: `record` from the main thread, `next_batch`/`acknowledged` from the
    network thread."""

    def __init__(self, data_dir: Path, cap: int = MAX_QUEUED,
                 batch_size: int = protocol.MAX_PLAYS) -> None:
        self.dir = Path(data_dir)
        self.cap = cap
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._dropped = 0
        self._batch: dict[str, Any] | None = self._load_batch()  # {"batch": str, "plays"}
        in_batch = {p["id"] for p in self._batch["plays"]} if self._batch else set()
        self._queue = [p for p in self._load_queue() if p["id"] not in in_batch][-cap:]
        self._lines = len(self._queue)

    # -- files --------------------------------------------------------------------------------

    def _load_batch(self) -> dict[str, Any] | None:
        path = self.dir / BATCH_FILE
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return None
        if not (isinstance(data, dict) and isinstance(data.get("batch"), str)
                and isinstance(data.get("plays"), list)):
            log.warning("ignoring malformed %s", path)
            return None
        plays = [p for p in data["plays"] if check_play(p) and isinstance(p.get("id"), str)]
        return {"batch": data["batch"], "plays": plays} if plays else None

    def _load_queue(self) -> list[dict[str, Any]]:
        path = self.dir / QUEUE_FILE
        try:
            text = path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return []
        plays = []
        for line in text.splitlines():
            try:
                play = json.loads(line)
            except ValueError:  # a line cut short by a power cut
                continue
            if check_play(play) and isinstance(play.get("id"), str):
                plays.append(play)
        return plays

    def _rewrite(self) -> None:
        data = "".join(json.dumps(p, ensure_ascii=False, separators=(",", ":")) + "\n"
                       for p in self._queue)
        atomic_write(self.dir / QUEUE_FILE, data.encode())
        self._lines = len(self._queue)

    # -- the main thread ----------------------------------------------------------------------

    def record(self, play: dict[str, Any]) -> None:
        """Queue one play (appended to the file at once: a restart keeps it)."""
        if not check_play(play):
            log.warning("not recording a malformed play %r", play)
            return
        entry = {**_public(play), "id": uuid.uuid4().hex[:16]}
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._queue.append(entry)
            over = len(self._queue) - self.cap
            if over > 0:
                del self._queue[:over]
                if self._dropped == 0:
                    log.warning("more than %d plays waiting to be sent; dropping the oldest",
                                self.cap)
                self._dropped += over
            try:
                if self._lines + 1 > self.cap + self.cap // 10:
                    self._rewrite()  # drop the lines of plays no longer queued
                else:
                    self.dir.mkdir(parents=True, exist_ok=True)
                    with open(self.dir / QUEUE_FILE, "a", encoding="utf-8") as f:
                        f.write(line)
                        f.flush()
                        os.fsync(f.fileno())
                    self._lines += 1
            except OSError as exc:  # kept in memory; written with the next rewrite
                log.error("could not save a play: %s", exc)

    # -- the network thread -------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + (len(self._batch["plays"]) if self._batch else 0)

    def next_batch(self) -> dict[str, Any] | None:
        """The PLAYS payload to send: the batch in flight (same id) or a new one; None when
        nothing waits."""
        with self._lock:
            if self._batch is None:
                if not self._queue:
                    return None
                taken = self._queue[:self.batch_size]
                batch: dict[str, Any] = {"batch": uuid.uuid4().hex, "plays": taken}
                # Batch file first, then the queue without it: a crash in between leaves the
                # plays in both, and loading drops them from the queue by id.
                atomic_write(self.dir / BATCH_FILE,
                             json.dumps(batch, ensure_ascii=False).encode())
                self._batch = batch
                del self._queue[:len(taken)]
                try:
                    self._rewrite()
                except OSError as exc:
                    log.error("could not rewrite the play queue: %s", exc)
            return {"batch": self._batch["batch"],
                    "plays": [_public(p) for p in self._batch["plays"]]}

    def acknowledged(self, batch_id: str) -> bool:
        """The server confirmed `batch_id`: forget it. False when it is not the batch in
        flight (a late answer to an old send)."""
        with self._lock:
            if self._batch is None or self._batch["batch"] != batch_id:
                return False
            self._batch = None
            with contextlib.suppress(FileNotFoundError):
                (self.dir / BATCH_FILE).unlink()
            return True
