"""The daily digest: a mail listing the screens offline longer than OFFLINE_ALERT_MINUTES.

Sent only where SMTP_HOST and DIGEST_TO are configured, once per local day after DIGEST_HOUR,
from the scheduler's tick. The day sent is kept in the counters table ("digest_day", as
YYYYMMDD) and claimed with a compare-and-set, so several server processes send it once; a send
that fails gives the day back and the next tick tries again. `cunping digest [--force]` sends it
from the command line. The mail is in Chinese: it goes to the county's staff.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections import defaultdict
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from zoneinfo import ZoneInfo

import click
from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.extensions import db
from server.models import Counter
from server.models.base import utcnow
from server.services import presence

log = logging.getLogger(__name__)

COUNTER = "digest_day"
SMTP_TIMEOUT = 30


def configured() -> bool:
    cfg = current_app.config
    return bool(cfg.get("SMTP_HOST") and cfg.get("DIGEST_TO"))


def _local(moment: datetime) -> datetime:
    tz = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz)


def _day_key(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _duration(minutes: int) -> str:
    if minutes >= 48 * 60:
        return f"约 {minutes // (24 * 60)} 天"
    if minutes >= 60:
        return f"约 {minutes // 60} 小时"
    return f"{minutes} 分钟"


def _threshold_text() -> str:
    minutes = int(current_app.config["OFFLINE_ALERT_MINUTES"])
    return f"{minutes // 60} 小时" if minutes % 60 == 0 else f"{minutes} 分钟"


def build(now: datetime | None = None) -> tuple[EmailMessage, int]:
    """The digest mail as of `now`, and how many screens it lists."""
    now = now or utcnow()
    cfg = current_app.config
    rows = presence.offline_for_long(presence.all_screens(), now)
    local_now = _local(now)
    day = f"{local_now.year}年{local_now.month}月{local_now.day}日"
    county = cfg.get("COUNTY_NAME") or ""
    if rows:
        # No spaces: a header's encoded words lose the spaces between them.
        subject = (f"【村屏】{county}{day}：{len(rows)}块屏幕离线超过"
                   f"{_threshold_text().replace(' ', '')}")
    else:
        subject = f"【村屏】{county}{day}：没有长时间离线的屏幕"
    lines = [
        f"{county}村屏每日离线简报（{local_now:%Y-%m-%d %H:%M}）",
        "",
    ]
    if rows:
        lines.append(f"以下 {len(rows)} 块屏幕离线超过 {_threshold_text()}，"
                     "请联系村里或广电网络检查：")
        by_group: dict[str, list[presence.OfflineScreen]] = defaultdict(list)
        for row in rows:
            chain = [*row.screen.region.ancestors(), row.screen.region]
            by_group[chain[1].name if len(chain) > 1 else chain[0].name].append(row)
        for group, members in by_group.items():
            lines += ["", f"{group}（{len(members)} 块）"]
            for row in members:
                s = row.screen
                if row.never:
                    since = f"添加于 {_local(row.since):%Y-%m-%d %H:%M}，从未连接"
                else:
                    since = (f"离线自 {_local(row.since):%Y-%m-%d %H:%M}"
                             f"（{_duration(row.minutes(now))}）")
                shown = row.showing
                if shown.kind == "alert":
                    last = f"预警《{shown.title or shown.code}》"
                elif shown.kind == "notice":
                    last = f"《{shown.title or shown.code}》"
                else:
                    last = "待机画面"
                lines.append(f"  · {s.name}（{s.code}，{s.region.full_name}）")
                lines.append(f"    {since}；最后 IP：{s.last_ip or '—'}；最后显示：{last}")
    else:
        lines.append(f"所有在用屏幕都在线，或离线不到 {_threshold_text()}。")
    base = str(cfg.get("PUBLIC_BASE_URL") or "").rstrip("/")
    lines += ["", f"实时仪表盘：{base}/admin/dashboard", "",
              "此邮件由村屏系统每天自动发送。"]
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = cfg["MAIL_FROM"]
    msg["To"] = ", ".join(cfg["DIGEST_TO"])
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=str(cfg["MAIL_FROM"]).rpartition("@")[2] or None)
    msg.set_content("\n".join(lines) + "\n", charset="utf-8")
    return msg, len(rows)


def deliver(msg: EmailMessage) -> None:
    """Send through SMTP_HOST:SMTP_PORT (STARTTLS and login when configured)."""
    cfg = current_app.config
    with smtplib.SMTP(cfg["SMTP_HOST"], int(cfg["SMTP_PORT"]), timeout=SMTP_TIMEOUT) as smtp:
        smtp.ehlo()
        if cfg.get("SMTP_STARTTLS"):
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if cfg.get("SMTP_USER"):
            smtp.login(cfg["SMTP_USER"], cfg.get("SMTP_PASSWORD") or "")
        smtp.send_message(msg)


def _claim(key: int) -> int | None:
    """Take today's digest for this process: the previous day sent, or None when another
    process (or an earlier tick) already has it."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(Counter).values(name=COUNTER, value=0).on_conflict_do_nothing(
            index_elements=[Counter.name])
    )
    previous = int(db.session.scalar(select(Counter.value).where(Counter.name == COUNTER)) or 0)
    if previous >= key:
        db.session.commit()
        return None
    done = db.session.execute(
        update(Counter).where(Counter.name == COUNTER, Counter.value == previous)
        .values(value=key).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return previous if done.rowcount else None  # type: ignore[attr-defined]


def _release(key: int, previous: int) -> None:
    db.session.execute(
        update(Counter).where(Counter.name == COUNTER, Counter.value == key)
        .values(value=previous).execution_options(synchronize_session=False)
    )
    db.session.commit()


def send_due(now: datetime | None = None) -> bool:
    """From the scheduler: send today's digest if configured, past DIGEST_HOUR, not sent yet
    today by any process, and some screen is offline for long. True when a mail went out."""
    now = now or utcnow()
    if not configured():
        return False
    local_now = _local(now)
    if local_now.hour < int(current_app.config["DIGEST_HOUR"]):
        return False
    key = _day_key(local_now.date())
    previous = _claim(key)
    if previous is None:
        return False
    try:
        msg, listed = build(now)
        if not listed:
            log.info("digest: no screen offline for long today; nothing sent")
            return False
        deliver(msg)
    except Exception:
        _release(key, previous)  # the next tick tries again
        raise
    log.info("digest sent to %s: %s screens offline", msg["To"], listed)
    return True


def send_now(now: datetime | None = None) -> int:
    """Send the digest at once, whatever the hour and whether it went out today, even when no
    screen is offline (to check the mail setup). Returns the screens listed."""
    if not configured():
        raise click.ClickException("Set CUNPING_SMTP_HOST and CUNPING_DIGEST_TO first.")
    msg, listed = build(now)
    deliver(msg)
    return listed


def init_app(app: Flask) -> None:
    @app.cli.command("digest")
    @click.option("--force", is_flag=True,
                  help="Send now, even if already sent today, before DIGEST_HOUR, or with no "
                       "screen offline.")
    def digest_command(force: bool) -> None:
        """Mail the daily digest of screens offline for long (SMTP_HOST, DIGEST_TO)."""
        if force:
            listed = send_now()
            click.echo(f"digest sent: {listed} screens offline for long")
        elif not configured():
            raise click.ClickException("Set CUNPING_SMTP_HOST and CUNPING_DIGEST_TO first.")
        elif send_due():
            click.echo("digest sent")
        else:
            click.echo("nothing sent: already sent today, before the digest hour, or no "
                       "screen offline for long")
