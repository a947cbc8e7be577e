"""A light simulated screen: the player's Socket.IO protocol over raw WebSocket frames.

Thousands of these run as greenlets in one process (gevent), each playing one screen the way
`player/client.py` does, at a fraction of python-socketio's cost per connection:

- Engine.IO v4 straight over a WebSocket (`/socket.io/?EIO=4&transport=websocket`): the open
  packet, every ping answered with a pong, a dead link noticed after pingInterval + pingTimeout;
- `40/player,{auth}` with the screen's real token and the revision and digest it holds
  (-1 and "" the first time), exactly as the player sends them;
- `welcome`, `snapshot`, `notice` (upsert/remove, applied to its set of code → version, with
  the time each code was first held), `alerts` answered with the Socket.IO acknowledgement
  `{"have": ["code:version", …]}`;
- a `heartbeat` at once after connecting, then every protocol.HEARTBEAT_SECONDS; a `sync`
  every protocol.RECONCILE_SECONDS;
- after a drop, the player's reconnect policy (player.client.backoff: half a second to a
  second, then jittered exponential backoff while the server does not answer).

Frames sent by the client are masked with a zero key (valid WebSocket framing, and no XOR to
compute). Only what is needed is parsed: the event name from the frame's text, JSON only for
the events whose content is recorded.

It runs as a worker process of bench/load.py, which talks to it over stdin/stdout, one JSON
object per line. The first line configures it:

    {"clients": [[index, token, url], ...], "concurrency": 100, "heartbeat": true}

and it starts connecting at once, answering {"started": unix time}. Later lines are
commands, each answered with one line:

    {"cmd": "status"}             counts: connected, ever connected, drops, failures, and the
                                  time of the last first connection
    {"cmd": "holds", "code": C}   per screen, when it first held notice C (unix time), the
                                  screens that do not hold it, and the revisions held
    {"cmd": "alert", "key": K}    when each screen first received alert K ("code:version")
    {"cmd": "stop"}               close every connection and exit

Run alone (debugging): python bench/lightclient.py < config.jsonl
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import gevent.lock  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from player import protocol  # noqa: E402

NS = protocol.NAMESPACE
CONNECT_TIMEOUT = 10.0  # player.client.CONNECT_TIMEOUT
BACKOFF_BASE, BACKOFF_MAX = 1.0, 20.0  # player.client.BACKOFF_BASE / BACKOFF_MAX
REFUSED_MIN, REFUSED_MAX = 15.0, 300.0  # player.client.REFUSED_BACKOFF_MIN / _MAX
BUSY_JITTER = 0.25  # player.client.BUSY_JITTER
_ZERO_MASK = b"\x00\x00\x00\x00"


def backoff(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """player.client.backoff, copied so this process does not import PIL and python-socketio:
    between half and all of min(cap, base · 2^attempt)."""
    step = min(cap, base * (2 ** min(attempt, 20)))
    return random.uniform(step / 2, step)


def busy_delay(retry_after: float) -> float:
    """player.client.busy_delay, copied (see backoff)."""
    hint = min(float(protocol.MAX_RETRY_AFTER), max(1.0, retry_after))
    return random.uniform(hint, hint * (1 + BUSY_JITTER))


class Closed(Exception):
    """The connection ended (EOF, close frame, reset, or silence past the ping timeout)."""


class Busy(Exception):
    """The server refused the handshake with 503 and a Retry-After (server/realtime/admission)."""

    def __init__(self, retry_after: float, ticket: str | None = None) -> None:
        super().__init__(f"busy, retry after {retry_after:g} s")
        self.retry_after = retry_after
        self.ticket = ticket


def frame(text: str) -> bytes:
    """One masked WebSocket text frame (zero mask key: the payload goes as is)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + _ZERO_MASK + data


class Link:
    """One WebSocket connection: the handshake, then whole text messages in, frames out."""

    __slots__ = ("buf", "sock")

    def __init__(self, url: str, timeout: float, ticket: str | None = None) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        query = f"{protocol.TICKET_PARAM}={ticket}&" if ticket else ""
        request = (f"GET /socket.io/?{query}EIO=4&transport=websocket HTTP/1.1\r\n"
                   f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed("closed during the handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 503"):
            self.sock.close()
            retry = re.search(rb"(?im)^retry-after:\s*(\d+)", head)
            ticket = re.search(rb"(?im)^" + protocol.TICKET_HEADER.encode() + rb":\s*(\S+)", head)
            raise Busy(float(retry.group(1)) if retry else 1.0,
                       ticket.group(1).decode() if ticket else None)
        if not head.startswith(b"HTTP/1.1 101"):
            raise Closed(head.split(b"\r\n", 1)[0].decode(errors="replace"))

    def send(self, text: str) -> None:
        self.sock.sendall(frame(text))

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def message(self) -> str:
        """The next whole text message (pings answered, fragments joined)."""
        parts: list[bytes] = []
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                self._need(4)
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                self._need(10)
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            self._need(at + n)
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise Closed("close frame")
            if opcode == 0x9:  # a WebSocket ping (not Engine.IO's): pong with its data
                self.sock.sendall(bytes((0x8A, 0x80 | len(payload))) + _ZERO_MASK + payload)
                continue
            if opcode == 0xA:
                continue
            parts.append(payload)
            if b0 & 0x80:  # FIN
                return b"".join(parts).decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError as exc:  # already gone; nothing to release
            print(f"lightclient: close: {exc}", file=sys.stderr)


class Screen:
    """One simulated screen and what it has received."""

    __slots__ = ("alerts", "busy", "connected", "connects", "drops", "failures",
                 "first_connected", "first_held", "index", "link", "notices", "refused",
                 "retry_after", "revision", "sync_id", "ticket", "token", "url")

    def __init__(self, index: int, token: str, url: str) -> None:
        self.index, self.token, self.url = index, token, url
        self.revision = -1
        self.notices: dict[str, int] = {}  # code -> version
        self.first_held: dict[str, float] = {}  # code -> when it was first held
        self.alerts: dict[str, float] = {}  # "code:version" -> when it was first received
        self.connected = False
        self.connects = self.drops = self.failures = self.busy = 0
        self.refused = False  # the last attempt was refused (not busy): the slow backoff
        self.retry_after = 0.0  # the last attempt was refused as busy: come back after this
        self.ticket: str | None = None  # … with this ticket for its slot
        self.first_connected = 0.0
        self.link: Link | None = None
        self.sync_id = 0

    def auth(self) -> str:
        digest = protocol.digest(
            {"code": c, "version": v} for c, v in self.notices.items()) if self.revision >= 0 \
            else ""
        return json.dumps({"token": self.token, "revision": self.revision, "digest": digest,
                           "version": "bench", "width": 1920, "height": 1080})

    def _digest(self) -> str:
        return protocol.digest({"code": c, "version": v} for c, v in self.notices.items())

    def heartbeat(self) -> str:
        return f'42{NS},' + json.dumps(["heartbeat", {
            "showing": None, "revision": self.revision, "digest": self._digest(),
            "version": "bench", "uptime_s": 0, "alert": None}])

    def sync(self) -> str:
        self.sync_id += 1
        return f'42{NS},{self.sync_id}' + json.dumps(
            ["sync", {"revision": self.revision, "digest": self._digest()}])

    # -- what the server sends ------------------------------------------------------------

    def hold(self, code: str, version: int, now: float) -> None:
        self.notices[code] = version
        self.first_held.setdefault(code, now)

    def on_event(self, link: Link, body: str, stats: Stats) -> None:
        """body: what follows "42/player,": an optional ack id, then ["name", data]."""
        bracket = body.index("[")
        name = body[bracket + 2:body.index('"', bracket + 2)]
        now = time.time()
        if name == "notice":
            data = json.loads(body[bracket:])[1]
            if data["op"] == "upsert":
                code = data["notice"]["code"]
                stats.note_size(code, body)
                self.hold(code, data["notice"]["version"], now)
            else:
                self.notices.pop(data["notice"]["code"], None)
            self.revision = data["revision"]
        elif name == "snapshot":
            data = json.loads(body[bracket:])[1]
            self.notices = {}
            for notice in data["notices"]:
                self.hold(notice["code"], notice["version"], now)
            self.revision = data["revision"]
        elif name == "alerts":
            data = json.loads(body[bracket:])[1]
            keys = [protocol.alert_key(a) for a in data["alerts"]]
            for key in keys:
                self.alerts.setdefault(key, now)
            link.send(f"42{NS}," + json.dumps([protocol.ALERTS_ACK, {"have": keys}]))
        # welcome, and anything else: nothing to record

    def on_ack(self, body: str) -> None:
        """A sync's answer: "current" adopts the server's revision (a snapshot follows else)."""
        bracket = body.index("[")
        answer = json.loads(body[bracket:])
        if answer and isinstance(answer[0], dict) and answer[0].get("status") == "current":
            self.revision = max(self.revision, int(answer[0].get("revision", -1)))

    # -- the connection --------------------------------------------------------------------

    def session(self, stats: Stats, gate: gevent.lock.Semaphore | None, heartbeat: bool) -> bool:
        """Connect and serve until the link drops. True if the namespace was connected."""
        try:
            if gate is not None:
                with gate:
                    link = self._connect(stats)
            else:
                link = self._connect(stats)
        except Busy as exc:
            self.failures += 1
            self.busy += 1
            self.retry_after = exc.retry_after
            self.ticket = exc.ticket  # brought back on the next handshake, as the player does
            stats.hints[hint_bucket(exc.retry_after)] += 1
            return False
        except (OSError, Closed, ValueError) as exc:
            self.failures += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            stats.kinds[failure_kind(exc)] += 1
            return False
        if link is None:
            return False
        self.link = link
        try:
            self._serve(link, stats, heartbeat)
        except (OSError, Closed, ValueError, KeyError, IndexError) as exc:
            stats.last_drop = f"{type(exc).__name__}: {exc}"
        finally:
            self.connected = False
            self.link = None
            self.drops += 1
            link.close()
        return True

    def _connect(self, stats: Stats) -> Link | None:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        link = Link(self.url, CONNECT_TIMEOUT, self.ticket)
        self.ticket = None
        try:
            while True:
                link.sock.settimeout(max(0.01, deadline - time.monotonic()))
                text = link.message()
                if text.startswith("0"):  # Engine.IO open: now the namespace
                    link.send(f"40{NS}," + self.auth())
                elif text == "2":
                    link.send("3")
                elif text.startswith(f"40{NS},"):
                    break
                elif text.startswith(f"44{NS},"):
                    reason = json.loads(text[len(NS) + 3:] or "{}")
                    message = reason.get("message") if isinstance(reason, dict) else reason
                    if message == protocol.BUSY:  # the server failed on its side: its hint
                        data = reason.get("data") if isinstance(reason, dict) else None
                        hint = data.get("retry_after") if isinstance(data, dict) else None
                        link.close()
                        raise Busy(float(hint) if isinstance(hint, int | float) else 10.0)
                    # Refused (the token): slowly, as the player does.
                    self.failures += 1
                    self.refused = True
                    stats.last_error = f"refused: {message}"
                    stats.kinds["refused"] += 1
                    link.close()
                    return None
                elif text.startswith(f"42{NS},"):  # events sent before the connect ack
                    self.on_event(link, text[len(NS) + 3:], stats)
        except BaseException:
            link.close()
            raise
        now = time.time()
        self.connected = True
        self.connects += 1
        if not self.first_connected:
            self.first_connected = now
            stats.last_first_connect = max(stats.last_first_connect, now)
        return link

    def _serve(self, link: Link, stats: Stats, heartbeat: bool) -> None:
        silence = 45.0  # pingInterval + pingTimeout (25 + 20 s): the server is gone
        last_heard = time.monotonic()
        # As the player: the first heartbeat at once, the first reconcile within the second
        # half of the period (spread, so a storm's reconnects do not all reconcile together).
        next_heartbeat = time.monotonic() if heartbeat else float("inf")
        next_sync = time.monotonic() + protocol.RECONCILE_SECONDS * random.uniform(0.5, 1.0)
        prefix_event, prefix_ack = f"42{NS},", f"43{NS},"
        while True:
            now = time.monotonic()
            if now >= next_heartbeat:
                link.send(self.heartbeat())
                next_heartbeat = now + protocol.HEARTBEAT_SECONDS
            if now >= next_sync:
                link.send(self.sync())
                next_sync = now + protocol.RECONCILE_SECONDS
            if now - last_heard > silence:
                raise Closed("no ping from the server")
            link.sock.settimeout(max(0.05, min(next_heartbeat, next_sync,
                                               last_heard + silence) - now))
            try:
                text = link.message()
            except TimeoutError:
                continue
            last_heard = time.monotonic()
            if text == "2":
                link.send("3")
            elif text.startswith(prefix_event):
                self.on_event(link, text[len(prefix_event):], stats)
            elif text.startswith(prefix_ack):
                self.on_ack(text[len(prefix_ack):])
            elif text.startswith(f"41{NS}") or text.startswith("1"):
                raise Closed("disconnected by the server")

    def run(self, stats: Stats, gate: gevent.lock.Semaphore, heartbeat: bool) -> None:
        """The player's loop: connect, serve, and after a drop come back with backoff."""
        attempt = 0
        first = True
        while not stats.stopping:
            # The first connection of the run goes through the gate (a bounded number of
            # handshakes in flight, to measure the connect rate); reconnects do not, as
            # real boxes coming back do not queue for each other.
            was_connected = self.session(stats, gate if first else None, heartbeat)
            if stats.stopping:
                return
            if was_connected:
                first = False
                attempt = 0
                gevent.sleep(backoff(0))
            else:
                attempt += 1
                if self.retry_after:
                    gevent.sleep(busy_delay(self.retry_after))
                    self.retry_after = 0.0
                elif self.refused:
                    self.refused = False
                    gevent.sleep(backoff(attempt, REFUSED_MIN, REFUSED_MAX))
                else:
                    gevent.sleep(backoff(attempt))


HINT_BUCKETS = (5, 15, 30, 60)


def hint_bucket(seconds: float) -> str:
    """A busy refusal's Retry-After, bucketed for the counts: "≤5 s", "≤15 s", … "60+ s"."""
    for top in HINT_BUCKETS:
        if seconds <= top:
            return f"<={top}s"
    return f">{HINT_BUCKETS[-1]}s"


def failure_kind(exc: BaseException) -> str:
    """A failed attempt's kind, for the counts (refused while the server is down, a timeout
    — the listen queue full, or the handshake slow —, closed early, …)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, Closed):
        return "closed"
    return type(exc).__name__


class Stats:
    """What the process as a whole reports."""

    def __init__(self) -> None:
        self.stopping = False
        self.last_first_connect = 0.0
        self.last_error = ""
        self.last_drop = ""
        self.kinds: collections.Counter[str] = collections.Counter()  # failures, not busy
        self.hints: collections.Counter[str] = collections.Counter()  # busy refusals' hints
        self.sizes: dict[str, int] = {}

    def note_size(self, code: str, body: str) -> None:
        """The event's size in bytes (name and data as sent, without the packet prefix)."""
        if code not in self.sizes and len(self.sizes) < 1000:
            self.sizes[code] = len(body[body.index("["):].encode())


def answer(screens: list[Screen], stats: Stats, command: dict[str, Any]) -> dict[str, Any]:
    cmd = command.get("cmd")
    if cmd == "status":
        return {
            "screens": len(screens),
            "connected": sum(s.connected for s in screens),
            "ever_connected": sum(bool(s.first_connected) for s in screens),
            "connects": sum(s.connects for s in screens),
            "drops": sum(s.drops for s in screens),
            "failures": sum(s.failures for s in screens),
            "busy": sum(s.busy for s in screens),
            "last_first_connect": stats.last_first_connect,
            "last_error": stats.last_error,
            "last_drop": stats.last_drop,
            "kinds": dict(stats.kinds),
            "hints": dict(stats.hints),
        }
    if cmd == "holds":
        code = command["code"]
        times = [s.first_held[code] for s in screens if code in s.notices]
        revisions: dict[int, int] = {}
        for s in screens:
            revisions[s.revision] = revisions.get(s.revision, 0) + 1
        return {"times": times, "missing": len(screens) - len(times),
                "connected": sum(s.connected for s in screens),
                "revisions": revisions, "bytes": stats.sizes.get(code)}
    if cmd == "alert":
        key = command["key"]
        times = [s.alerts[key] for s in screens if key in s.alerts]
        return {"times": times, "missing": len(screens) - len(times)}
    if cmd == "stop":
        stats.stopping = True
        for s in screens:
            if s.link is not None:
                s.link.close()
        return {"stopped": len(screens)}
    return {"error": f"unknown command {cmd!r}"}


def main() -> None:
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    config = json.loads(stdin.readline())
    stats = Stats()
    screens = [Screen(i, token, url) for i, token, url in config["clients"]]
    gate = gevent.lock.Semaphore(int(config.get("concurrency", 100)))
    heartbeat = bool(config.get("heartbeat", True))
    out = sys.stdout
    started = time.time()
    for s in screens:
        gevent.spawn(s.run, stats, gate, heartbeat)
    out.write(json.dumps({"started": started}) + "\n")  # the connect rate counts from here
    out.flush()
    while True:
        line = stdin.readline()
        if not line:
            break
        reply = answer(screens, stats, json.loads(line))
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if stats.stopping:
            break
    stats.stopping = True


if __name__ == "__main__":
    main()
