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
    "duration_s": 20,              # seconds each page stays on screen
    "budget_s": 120,               # optional: seconds the notice may hold the screen in one
                                   # rotation (10–3600; absent: DEFAULT_BUDGET_S); a longer one
                                   # shows that many pages, says how many are left ("还有 27 页
                                   # · 扫码看全文") and goes on from the next page next time
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

AlertPayload = {                   # an emergency alert; it takes over the whole screen
    "code": "Qx7Lm2",              # the alert's public code (its page: url below)
    "version": 2,                  # + 1 with every update (CAP Update); a new version is new
    "level": 1,                    # 1–4: I red, II orange, III yellow, IV blue (I highest)
    "color": "#d32f2f",            # the level's colour (LEVEL_COLORS)
    "event": "暴雨",                # event type
    "title": "清源县气象台发布暴雨红色预警",
    "text": "...",                 # plain text, "\n" between paragraphs
    "instruction": "...",          # what to do; may be ""
    "sender_name": "清源县应急管理局",
    "starts_at": iso, "expires_at": iso,   # shown only in between (UTC, "Z")
    "issued_at": iso,              # when this version was put in force
    "targets": [12],               # target region ids (like a notice's)
    "url": "http://host/a/Qx7Lm2", # the residents' page for the QR code
}

Alerts are sent as a whole set, never as deltas: ALERTS carries every alert in force (or due to
start) for this screen, and an empty list means "no alert". A server with a county alert key
signs each set: ALERTS {"alerts": [...], "server_time": iso, "keys": [base64 public key, ...],
"signature": Signature}, where Signature = {"alg": "ed25519", "key": key_id(public key),
"value": base64 of the Ed25519 signature of signed_part(message)}; "keys" are the county's
keys a player pinned at pairing is to hold from then on (a rotation announces the next key).
A player holding the county's public keys shows only sets whose signature verifies and whose
server_time is not older than the last set it took (less SIGNED_TIME_SLACK); it answers any
other with ALERTS_REFUSED {"reason", "key"} and keeps what it shows (docs/alerts.md, "Signed
alerts"). The player acknowledges it with an
ALERTS_ACK event {"have": ["Qx7Lm2:2", ...]} — code:version of every alert it now holds, saved
to disk; the server sends the set again until that acknowledgement arrives (ALERT_ACK_SECONDS,
then backing off). ALERTS carries no Socket.IO ack id: one encoded message serves every screen
due the same set.
Several alerts in force show one after another by level (I first); an alert outranks every
notice, the pairing code and the standby slide.

Play = {"code": "Ab3xK9", "version": 3, "started_at": iso, "seconds": 20}
    one notice slide shown for `seconds` (whole seconds, ≥ 1), reported in PLAYS batches.

Heartbeat = {
    "showing": "Ab3xK9" | None,    # the notice on screen (None: an alert, standby, a message)
    "revision": 12, "digest": "9f2c…",  # the set the player HAS and shows: notices that could
                                   # not be saved are still shown, from memory, and counted
    "version": "0.4.0",            # the player's software
    "uptime_s": 3600,
    "alert": "Qx7Lm2" | None,      # the alert on screen
    "store_error": "No space left on device" | None,  # a write to the data folder failing now
                                   # (≤ MAX_STORE_ERROR characters; retried until it works)
    "clock_offset_s": 7200,        # the server's clock minus the box's, whole seconds, as last
                                   # measured from server_time (positive: the box is behind)
}
The last three are optional (older players omit them). The player judges publication, expiry
and alerts by its clock plus the offset, so a box without a real-time clock shows what the
server's clock says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

NAMESPACE = "/player"
PROTOCOL_VERSION = 2  # 2: ALERTS acknowledged by the ALERTS_ACK event, not a Socket.IO ack

# server -> player
WELCOME = "welcome"  # {"screen": {...}, "county_name", "server_time", "revision"}
SNAPSHOT = "snapshot"  # {"revision": int, "notices": [NoticePayload, ...]}
NOTICE = "notice"  # {"revision": int, "op": "upsert"|"remove", "notice": NoticePayload|{"code"}}
PAIRING = "pairing"  # {"code": "123456", "expires_at": iso}
PAIRED = "paired"  # {"token": "..."}: keep it and reconnect with it
REVOKED = "revoked"  # {"reason": "..."}: the token is no longer valid
# {"reason": "..."}: close this connection and connect again — the screen was moved and the
# server process holding the connection cannot give it its new rooms itself
REJOIN = "rejoin"
ALERTS = "alerts"  # {"alerts": [AlertPayload, ...], "server_time": iso}; answered by ALERTS_ACK
SCREENSHOT = "screenshot"  # {"request": str}: answer with FRAME, the frame shown now
# player -> server
SYNC = "sync"  # {"revision": int, "digest": str}; the ack says {"status": "current"|"snapshot"}
HEARTBEAT = "heartbeat"  # {"showing": code|None, "revision", "digest", "version", "uptime_s",
#                          "alert": code|None (the alert on screen now),
#                          "store_error": str|None (a save to local storage failing now),
#                          "clock_offset_s": int (the server's clock minus the box's)}
PLAYS = "plays"  # {"batch": str (≤ 40 chars, unique per batch), "plays": [Play, ...]};
#                  ack {"status": "ok", "accepted": n} (a batch counted before: "ok" too)
ALERTS_REFUSED = "alerts_refused"  # {"reason": str, "key": str|None}: a set not shown
ALERTS_ACK = "alerts_ack"  # {"have": ["code:version", ...]}: the alerts held now (saved);
#                           ack {"status": "ok"|"ignored", "reason"?}
FRAME = "frame"  # {"request": str, "image": base64 JPEG, "width", "height", "showing"};
#                  ack {"status": "ok"|"refused"}

# Limits: anything larger is refused (server) or ignored with a full resync (player).
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
MAX_NOTICES = 500
MAX_TITLE = 200
MAX_BLOCK_TEXT = 20_000

# A notice's time budget per rotation (NoticePayload "budget_s"), seconds.
DEFAULT_BUDGET_S = 120
MIN_BUDGET_S = 10
MAX_BUDGET_S = 3600

MAX_ALERTS = 50
MAX_ALERT_TEXT = 5_000
MAX_PLAYS = 500  # per PLAYS batch
MAX_FRAME_BYTES = 1024 * 1024  # a FRAME's JPEG, before base64
MAX_STORE_ERROR = 200  # characters of a heartbeat's store_error (longer: cut)
# A heartbeat's clock_offset_s is clamped to this (± 200 years): a box without a real-time
# clock may boot in 1970, 56 years behind, and that must still be reported, not refused.
MAX_CLOCK_OFFSET_S = 200 * 365 * 86400
LEVEL_COLORS = {1: "#d32f2f", 2: "#ef6c00", 3: "#f9a825", 4: "#1565c0"}
LEVEL_NAMES = {1: "红色", 2: "橙色", 3: "黄色", 4: "蓝色"}  # 暴雨红色预警

ALERT_ACK_SECONDS = 5  # no ack this long after sending ALERTS: send it again (then backing off)
PLAYS_SECONDS = 60  # the player reports plays this often
PLAYS_KEEP_DAYS = 31  # the server refuses plays older than this (counted, acknowledged: dropped)
RECONCILE_SECONDS = 180  # the player re-checks its revision this often, as a backstop to push
HEARTBEAT_SECONDS = 30
# A handshake refused with this reason is not about the token: the server process is saturated
# (a reconnect storm). It answers the Engine.IO handshake with HTTP 503, a `Retry-After` header
# and {"message": BUSY, "retry_after": seconds}; the player waits that long plus full jitter.
BUSY = "server busy, try again"
MAX_RETRY_AFTER = 300  # a longer hint is taken as this
# The refusal's ticket for its slot (header, and "ticket" in the body): the player's next
# handshake carries it as `?ticket=…`, and is admitted before screens that come without one.
TICKET_HEADER = "Cunping-Ticket"
TICKET_PARAM = "ticket"
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
    budget = notice.get("budget_s", DEFAULT_BUDGET_S)
    _require(isinstance(budget, int) and not isinstance(budget, bool)
             and MIN_BUDGET_S <= budget <= MAX_BUDGET_S, "bad budget_s")
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


def check_alert(alert: Any) -> dict[str, Any]:
    """Validate one AlertPayload; returns it, or raises ProtocolError naming the problem."""
    _require(isinstance(alert, dict), "alert must be an object")
    _require(isinstance(alert.get("code"), str) and 0 < len(alert["code"]) <= 16,
             "alert: bad code")
    _require(isinstance(alert.get("version"), int), "alert: bad version")
    _require(alert.get("level") in LEVEL_COLORS, "alert: bad level")
    for key, limit in (("title", MAX_TITLE), ("text", MAX_ALERT_TEXT),
                       ("event", 80), ("sender_name", 200)):
        _require(isinstance(alert.get(key), str) and len(alert[key]) <= limit,
                 f"alert: bad {key}")
    _require(isinstance(alert.get("instruction", ""), str)
             and len(alert.get("instruction", "")) <= MAX_ALERT_TEXT, "alert: bad instruction")
    for key in ("starts_at", "expires_at"):
        _require(isinstance(alert.get(key), str), f"alert: bad {key}")
    _require(isinstance(alert.get("targets"), list)
             and all(isinstance(t, int) for t in alert["targets"]), "alert: bad targets")
    _require(alert.get("url") is None or isinstance(alert.get("url"), str), "alert: bad url")
    return alert


def check_alerts(payload: Any) -> dict[str, Any]:
    _require(isinstance(payload, dict), "alerts must be an object")
    alerts = payload.get("alerts")
    _require(isinstance(alerts, list) and len(alerts) <= MAX_ALERTS, "alerts: bad list")
    for alert in alerts:
        check_alert(alert)
    return payload


SIGNATURE_ALG = "ed25519"
SIGNED_TIME_SLACK = 30  # seconds a signed set's server_time may be older than the last taken
# (server processes' clocks; an older one is a replay: an old empty set would clear an alert)


def signed_part(message: dict[str, Any]) -> bytes:
    """What an ALERTS signature covers, as canonical JSON: the set, its server_time and the
    county's keys announced with it."""
    part = {"alerts": message.get("alerts"), "server_time": message.get("server_time")}
    if "keys" in message:
        part["keys"] = message["keys"]
    return json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_key: bytes) -> str:
    """A public key's short name (its raw 32 bytes hashed): which key signed a set."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def alert_key(alert: dict[str, Any]) -> str:
    """"code:version", as acknowledgements name an alert."""
    return f"{alert['code']}:{alert['version']}"
