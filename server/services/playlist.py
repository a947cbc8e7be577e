"""What a screen should show: notice payloads (player/protocol.py) and per-screen snapshots.

Snapshots are cached in-process per (region, revision): every screen of a village shares one
entry, and a revision bump makes a new key, so a reconnect storm of thousands of screens costs
one query per village. An entry also ends when one of its notices reaches its expiry (the
scheduler's pass may come a few seconds later).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask, current_app

from player import protocol
from server.models import Notice, Revision, Screen
from server.models.base import utcnow
from server.services import notices as notice_service
from server.services import qr, revisions
from server.services.markup import to_blocks

CACHE_SIZE = 2048  # regions × revisions kept; a county has a few hundred villages


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def _absolute(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def notice_payload(notice: Notice) -> dict[str, Any]:
    """The live revision of `notice` as a NoticePayload (see player/protocol.py)."""
    rev = notice.live_revision
    assert rev is not None, "only live notices go to screens"
    return revision_payload(notice, rev)


def revision_payload(notice: Notice, rev: Revision) -> dict[str, Any]:
    """Any revision of `notice` (draft, pending or live) as a NoticePayload, as a screen gets
    it once that revision is live (admin previews use this for drafts)."""
    published = notice.published_at if rev is notice.live_revision else None
    return {
        "code": notice.code,
        "version": rev.number,
        "category": {
            "key": rev.category.key,
            "name": rev.category.name,
            "color": rev.category.color,
        },
        "title": rev.title,
        "blocks": to_blocks(rev.body),
        "regions": [r.full_name for r in rev.targets],
        "targets": [r.id for r in rev.targets],
        "published_at": _iso(published or rev.publish_at or utcnow()),
        "expire_at": _iso(rev.expire_at),
        "duration_s": rev.duration_s,
        "budget_s": notice_service.budget_of(rev),
        "pinned": rev.pinned,
        "url": qr.notice_url(current_app.config["PUBLIC_BASE_URL"], notice.code),
        "images": [_absolute("/media/" + image.filename) for image in rev.images],
    }


@dataclass(frozen=True)
class Snapshot:
    revision: int
    notices: list[dict[str, Any]]  # shared between screens: never mutate
    digest: str
    valid_until: datetime | None
    # What the channel made of it to send (server/realtime: the SNAPSHOT packets, encoded once
    # for every screen sent this snapshot); kept with the snapshot, so it lives as long.
    wire: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_payload(self) -> dict[str, Any]:
        return {"revision": self.revision, "notices": self.notices}


class _Cache:
    """A small thread-safe LRU of snapshots, one per app."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[int, int], Snapshot] = OrderedDict()
        self.lock = threading.Lock()
        self.misses = 0
        # One reader per key: after a restart a village's screens all miss at once, and each
        # reading the same snapshot took a pooled connection of its own (the pool ran dry).
        self.reading: dict[tuple[int, int], threading.Lock] = {}

    def reader(self, key: tuple[int, int]) -> threading.Lock:
        with self.lock:
            lock = self.reading.get(key)
            if lock is None:
                lock = self.reading[key] = threading.Lock()
            return lock

    def get(self, key: tuple[int, int], now: datetime) -> Snapshot | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry.valid_until is not None and entry.valid_until <= now:
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return entry

    def put(self, key: tuple[int, int], entry: Snapshot) -> None:
        with self.lock:
            self.entries[key] = entry
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)


def _cache(app: Flask | None = None) -> _Cache:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    cache = app.extensions.get("cunping_snapshots")
    if cache is None:
        cache = app.extensions.setdefault("cunping_snapshots", _Cache(CACHE_SIZE))
    return cache  # type: ignore[no-any-return]


def snapshot(screen: Screen, now: datetime | None = None) -> Snapshot:
    """Everything `screen` should show now, at its revision (cached per region and revision)."""
    return snapshot_at(screen.region_id, revisions.screen_revision(screen), now)


def cached(app: Flask, region_id: int, revision: int) -> Snapshot | None:
    """The snapshot of (region, revision) when this process has it: no database and no app
    context (the players' connects and reconciles)."""
    return _cache(app).get((region_id, revision), utcnow())


def snapshot_at(region_id: int, revision: int, now: datetime | None = None) -> Snapshot:
    """What screens of `region_id` show at `revision` (the newest over its chain)."""
    now = now or utcnow()
    key = (region_id, revision)
    cache = _cache()
    entry = cache.get(key, now)
    if entry is not None:
        return entry
    reader = cache.reader(key)
    with reader:  # the others wait for the one reading it, then take its entry
        entry = cache.get(key, now)
        if entry is None:
            entry = _read(cache, key, now)
    with cache.lock:
        cache.reading.pop(key, None)
    return entry


def _read(cache: _Cache, key: tuple[int, int], now: datetime) -> Snapshot:
    region_id, revision = key
    cache.misses += 1
    live = notice_service.live_for_regions([region_id], now=now)[: protocol.MAX_NOTICES]
    payloads = [notice_payload(n) for n in live]
    expiries = [n.live_revision.expire_at for n in live if n.live_revision.expire_at]
    entry = Snapshot(
        revision=revision,
        notices=payloads,
        digest=protocol.digest(payloads),
        valid_until=min(expiries) if expiries else None,
    )
    cache.put(key, entry)
    return entry


def snapshot_for(screen: Screen) -> dict[str, Any]:
    """The SNAPSHOT payload for `screen`: {"revision", "notices"}."""
    return snapshot(screen).as_payload()
