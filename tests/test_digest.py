"""The daily digest of screens offline for long, sent to a real SMTP server on loopback (a
small one written here with socketserver: EHLO, AUTH PLAIN, MAIL, RCPT, DATA), read back and
parsed like a mail client would."""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from server.extensions import db
from server.models import Counter, Screen
from server.models.base import utcnow
from server.scheduler import tick
from server.services import digest
from server.services import screens as screen_service
from tests.conftest import World
from tests.test_screens import publish

USER, SECRET = "cunping", "smtp-secret"


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: records each message's envelope and bytes."""

    server: SMTPServer

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self) -> None:
        self.reply("220 test SMTP ready")
        sender, rcpts, authed = "", [], False
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test")
                self.reply("250-AUTH PLAIN")
                self.reply("250 8BITMIME")
            elif verb == "AUTH":
                parts = line.split(" ")
                _zid, user, password = base64.b64decode(parts[2]).decode().split("\0")
                authed = (user, password) == (USER, SECRET)
                self.reply("235 ok" if authed else "535 bad credentials")
            elif verb == "MAIL":
                if self.server.need_auth and not authed:
                    self.reply("530 authentication required")
                    continue
                sender, rcpts = line.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                self.reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.server.received.append({"from": sender, "to": rcpts, "data": data})
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, need_auth: bool) -> None:
        super().__init__(("127.0.0.1", 0), SMTPHandler)
        self.need_auth = need_auth
        self.received: list[dict[str, Any]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@pytest.fixture
def smtp(app: Flask) -> Iterator[SMTPServer]:
    server = SMTPServer(need_auth=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port, SMTP_USER=USER,
                      SMTP_PASSWORD=SECRET, SMTP_STARTTLS=False,
                      MAIL_FROM="cunping@qingyuan.example", DIGEST_TO=["ops@qingyuan.example",
                                                                     "zhang@qingyuan.example"],
                      DIGEST_HOUR=8, OFFLINE_ALERT_MINUTES=120, COUNTY_NAME="清源县")
    yield server
    server.shutdown()
    server.server_close()


def mails(server: SMTPServer) -> list[EmailMessage]:
    return [message_from_bytes(m["data"], policy=policy.default)  # type: ignore[misc]
            for m in server.received]


def local(hour: int, minute: int = 0, day: int = 22) -> datetime:
    """A naive-UTC moment at hour:minute Shanghai time (UTC+8) on 2026-11-<day>."""
    return datetime(2026, 11, day, hour, minute) - timedelta(hours=8)


def gone_screen(world: World, name: str, since: datetime, ip: str = "10.3.4.5") -> Screen:
    screen, _token = screen_service.provision(None, world.village, name)
    screen.created_at = since - timedelta(days=30)
    screen.last_seen_at = since
    screen.last_ip = ip
    db.session.commit()
    return screen


def test_the_digest_lists_screens_offline_for_long_in_chinese(
    app: Flask, world: World, smtp: SMTPServer
) -> None:
    now = local(8, 5)
    notice = publish(world, [world.village.code])
    gone = gone_screen(world, "村委会门口屏", now - timedelta(hours=14))
    screen_service.record_heartbeat(gone, {"showing": notice.code})
    gone.last_seen_at = now - timedelta(hours=14)
    db.session.commit()
    recent = gone_screen(world, "刚断屏", now - timedelta(minutes=30))
    online = gone_screen(world, "在线屏", now)
    screen_service.record_connect(online, "sid-on")

    assert digest.send_due(now) is True
    [received] = smtp.received
    assert received["from"] == "cunping@qingyuan.example"
    assert received["to"] == ["ops@qingyuan.example", "zhang@qingyuan.example"]
    [mail] = mails(smtp)
    assert mail["Subject"] == "【村屏】清源县2026年11月22日：1块屏幕离线超过2小时"
    assert mail["To"] == "ops@qingyuan.example, zhang@qingyuan.example"
    body = mail.get_content()
    assert "村委会门口屏" in body and gone.code in body and "清源县 · 柳河镇 · 前王庄村" in body
    assert "离线自 2026-11-21 18:05（约 14 小时）" in body  # local time
    assert "最后 IP：10.3.4.5" in body and f"《{notice.current.title}》" in body
    assert "柳河镇（1 块）" in body
    assert recent.name not in body and online.name not in body
    assert "http://cp.test/admin/dashboard" in body


def test_sent_once_a_day_after_the_hour_by_whichever_process_comes_first(
    app: Flask, world: World, smtp: SMTPServer
) -> None:
    gone_screen(world, "久断屏", local(6, day=20))
    assert digest.send_due(local(7, 59)) is False  # before DIGEST_HOUR
    assert smtp.received == []
    assert digest.send_due(local(8, 0)) is True
    assert digest.send_due(local(8, 15)) is False  # this or another process: already sent
    assert digest.send_due(local(23, 59)) is False
    counter = db.session.scalar(db.select(Counter).where(Counter.name == digest.COUNTER))
    assert counter is not None and counter.value == 20261122
    assert digest.send_due(local(8, 0, day=23)) is True  # the next day
    assert len(smtp.received) == 2


def test_the_scheduler_tick_sends_it_and_a_failed_send_is_retried(
    app: Flask, world: World, smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone_screen(world, "久断屏", utcnow() - timedelta(days=2))
    app.config["DIGEST_HOUR"] = 0  # due whenever the test runs
    app.config["SMTP_PASSWORD"] = "wrong"
    tick(app)  # the server refuses the login: logged, and the day is given back
    assert smtp.received == []
    assert db.session.scalar(
        db.select(Counter.value).where(Counter.name == digest.COUNTER)) == 0
    app.config["SMTP_PASSWORD"] = SECRET
    tick(app)  # the next tick retries
    assert len(smtp.received) == 1
    tick(app)
    assert len(smtp.received) == 1


def test_nothing_is_sent_without_smtp_or_without_screens_offline(
    app: Flask, world: World, smtp: SMTPServer
) -> None:
    assert digest.send_due(local(9)) is False  # no screen offline: no mail
    assert smtp.received == []
    gone_screen(world, "久断屏", local(6, day=20))
    app.config["SMTP_HOST"] = ""
    assert digest.send_due(local(9, day=23)) is False
    app.config["SMTP_HOST"] = "127.0.0.1"
    app.config["DIGEST_TO"] = []
    assert digest.send_due(local(9, day=23)) is False
    assert smtp.received == []


def run_cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["digest", *args])


def test_the_cli_sends_it_and_force_sends_even_with_nothing_offline(
    app: Flask, world: World, smtp: SMTPServer
) -> None:
    result = run_cli(app, "--force")
    assert result.exit_code == 0, result.output
    assert "0 screens" in result.output
    [mail] = mails(smtp)
    assert "没有长时间离线的屏幕" in mail["Subject"]
    app.config["SMTP_HOST"] = ""
    result = run_cli(app)
    assert result.exit_code != 0 and "CUNPING_SMTP_HOST" in result.output
