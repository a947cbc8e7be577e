"""The player protocol: Socket.IO event names and payload shapes, shared by server and player.

Pure Python with no dependencies, so the server imports it and a set-top box runs it.
docs/protocol.md describes the rules (revisions, catch-up, reconcile) in prose.

Shapes (JSON):

NoticePayload = {
    "code": "Ab3xK9",              # the notice's public code
    "version": 3,                  # the live revision's number; changes with every re-publication
    "category": {"key": "finance", "name": "财务公开", "color": "#2e7d32"},
    "title": "...",
    "blocks": [Block, ...],        # the body, parsed by the server (see below)
    "regions": ["清源县 · 柳河镇 · 前王庄村"],  # full names of the targets, for the footer
    "targets": [12, 15],           # target region ids; a screen shows a notice when one of its
                                   # region chain ids is among them
    "published_at": "2026-11-22T10:00:00Z",
    "expire_at": "2026-12-22T10:00:00Z" | None,
    "duration_s": 20,
    "pinned": False,
    "url": "http://host/n/Ab3xK9", # the notice's page; the player adds ?s=<screen code> for its QR
    "images": ["http://host/media/abc.jpg", ...],
}
Block = {"type": "paragraph", "runs": [Run, ...]}
      | {"type": "heading", "runs": [Run, ...]}
      | {"type": "list", "ordered": bool, "items": [[Run, ...], ...]}
      | {"type": "table", "align": ["left"|"right"|"center", ...],
         "header": [[Run, ...], ...], "rows": [[[Run, ...], ...], ...]}
Run = {"text": "...", "bold": bool}      # text may contain "\n" for a hard line break
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

NAMESPACE = "/player"
PROTOCOL_VERSION = 1

# server -> player
WELCOME = "welcome"  # {"screen": {...}, "county_name", "server_time", "revision"}
SNAPSHOT = "snapshot"  # {"revision": int, "notices": [NoticePayload, ...]}
NOTICE = "notice"  # {"revision": int, "op": "upsert"|"remove", "notice": NoticePayload|{"code"}}
PAIRING = "pairing"  # {"code": "123456", "expires_at": iso}
PAIRED = "paired"  # {"token": "..."}: keep it and reconnect with it
REVOKED = "revoked"  # {"reason": "..."}: the token is no longer valid
# player -> server
SYNC = "sync"  # {"revision": int, "digest": str}; the ack says {"status": "current"|"snapshot"}
HEARTBEAT = "heartbeat"  # {"showing": code|None, "revision", "digest", "version", "uptime_s"}

# Limits: anything larger is refused (server) or ignored with a full resync (player).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_NOTICES = 500
MAX_TITLE = 200
MAX_BLOCK_TEXT = 20_000

RECONCILE_SECONDS = 180  # the player re-checks its revision this often, as a backstop to push
HEARTBEAT_SECONDS = 30
ONLINE_GRACE_SECONDS = 90  # no heartbeat for this long: offline


class ProtocolError(ValueError):
    """A payload that does not have the documented shape."""


def digest(notices: Iterable[dict[str, Any]]) -> str:
    """A short fingerprint of a set of notices (codes and versions), order-independent.

    Server and player compute it the same way; a mismatch means the player must resync."""
    pairs = sorted(f"{n['code']}:{n['version']}" for n in notices)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ProtocolError(message)


def _check_runs(runs: Any, where: str) -> None:
    _require(isinstance(runs, list), f"{where}: runs must be a list")
    for run in runs:
        _require(isinstance(run, dict) and isinstance(run.get("text"), str), f"{where}: bad run")
        _require(len(run["text"]) <= MAX_BLOCK_TEXT, f"{where}: text too long")


def check_block(block: Any) -> None:
    _require(isinstance(block, dict), "block must be an object")
    kind = block.get("type")
    if kind in ("paragraph", "heading"):
        _check_runs(block.get("runs"), kind)
    elif kind == "list":
        items = block.get("items")
        _require(isinstance(items, list), "list: items must be a list")
        for item in items:
            _check_runs(item, "list item")
    elif kind == "table":
        header, rows = block.get("header"), block.get("rows")
        _require(isinstance(header, list) and isinstance(rows, list), "table: bad shape")
        for cell in header:
            _check_runs(cell, "table header")
        for row in rows:
            _require(isinstance(row, list), "table: row must be a list")
            for cell in row:
                _check_runs(cell, "table cell")
    else:
        raise ProtocolError(f"unknown block type {kind!r}")


def check_notice(notice: Any) -> dict[str, Any]:
    """Validate one NoticePayload; returns it, or raises ProtocolError naming the problem."""
    _require(isinstance(notice, dict), "notice must be an object")
    _require(isinstance(notice.get("code"), str) and 0 < len(notice["code"]) <= 16, "bad code")
    _require(isinstance(notice.get("version"), int), "bad version")
    _require(isinstance(notice.get("title"), str) and len(notice["title"]) <= MAX_TITLE,
             "bad title")
    _require(isinstance(notice.get("blocks"), list), "blocks must be a list")
    for block in notice["blocks"]:
        check_block(block)
    _require(isinstance(notice.get("targets"), list)
             and all(isinstance(t, int) for t in notice["targets"]), "bad targets")
    _require(isinstance(notice.get("duration_s"), int) and 1 <= notice["duration_s"] <= 3600,
             "bad duration")
    category = notice.get("category")
    _require(isinstance(category, dict) and isinstance(category.get("name"), str),
             "bad category")
    _require(isinstance(notice.get("url"), str), "bad url")
    _require(notice.get("expire_at") is None or isinstance(notice.get("expire_at"), str),
             "bad expire_at")
    return notice


def check_snapshot(payload: Any) -> dict[str, Any]:
    _require(isinstance(payload, dict), "snapshot must be an object")
    _require(isinstance(payload.get("revision"), int), "snapshot: bad revision")
    notices = payload.get("notices")
    _require(isinstance(notices, list) and len(notices) <= MAX_NOTICES, "snapshot: bad notices")
    for notice in notices:
        check_notice(notice)
    return payload


def check_delta(payload: Any) -> dict[str, Any]:
    _require(isinstance(payload, dict), "notice event must be an object")
    _require(isinstance(payload.get("revision"), int), "notice event: bad revision")
    op = payload.get("op")
    _require(op in ("upsert", "remove"), f"notice event: unknown op {op!r}")
    if op == "upsert":
        check_notice(payload.get("notice"))
    else:
        notice = payload.get("notice")
        _require(isinstance(notice, dict) and isinstance(notice.get("code"), str),
                 "remove: bad code")
    return payload
