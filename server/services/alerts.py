"""Emergency alerts: issue (and confirm, under the two-person rule), update, cancel, expire;
what each screen must show; and the proof of delivery (acknowledgements).

Rules (docs/alerts.md):
- Only users with an explicit ALERT grant covering every target issue, confirm, update or
  cancel an alert (an admin grant does not imply it).
- With ALERT_TWO_PERSON on, an alert issued in the admin or the API waits (PENDING) until
  another alert user who covers its targets confirms it; the issuer cannot confirm their own.
- An alert is in force from `starts_at` to `expires_at` while ACTIVE. An update (CAP Update)
  changes it in place: new identifier, version + 1, acknowledgements start again. A cancel
  (CAP Cancel) ends it at once.
- Every change bumps the "alerts" counter and sends `signals.alerts_changed` after the commit;
  each server process's dispatcher (server/realtime/alert_dispatch.py) sends each screen its
  whole set and retries until the screen acknowledges.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, case, func, or_, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.orm import contains_eager

from player import protocol
from server import signals
from server.extensions import db
from server.models import Alert, AlertDelivery, AlertStatus, Region, Role, Screen, User
from server.models.base import utcnow
from server.services import audit, permissions, revisions
from server.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from server.services.markup import clean_text
from server.services.notices import CODE_ALPHABET, CODE_LENGTH, _resolve_regions, code_spellings

COUNTER = "alerts"
TITLE_MAX = 200
TEXT_MAX = protocol.MAX_ALERT_TEXT
EVENT_MAX = 80
SENDER_NAME_MAX = 200
REASON_MAX = 500
MAX_DURATION = timedelta(days=30)
DEFAULT_DURATION = timedelta(hours=6)
IN_FORCE = (AlertStatus.ACTIVE,)
ENDED = (AlertStatus.CANCELLED, AlertStatus.EXPIRED, AlertStatus.REJECTED)


@dataclass
class AlertInput:
    """What an alert user (form), an API client or a CAP file sends."""

    level: int | str = 0
    event: str = ""
    title: str = ""
    text: str = ""
    instruction: str = ""
    sender_name: str = ""
    targets: Sequence[str | int] = field(default_factory=list)  # region ids or codes
    starts_at: datetime | None = None  # naive UTC; None: now
    expires_at: datetime | None = None  # naive UTC; None: DEFAULT_DURATION after the start
    # CAP details, kept for the export (filled by the CAP import)
    identifier: str = ""
    sender: str = ""
    cap_status: str = "Actual"
    severity: str = ""
    urgency: str = ""
    certainty: str = ""


# --- reading -------------------------------------------------------------------------------


def get(code: str) -> Alert:
    """The alert with this code, typed in any case (codes are one case since notices' were)."""
    alert = db.session.scalar(select(Alert).where(Alert.code == code))
    if alert is None:
        found = db.session.scalars(select(Alert).where(
            func.lower(Alert.code).in_(code_spellings(code))).limit(2)).all()
        alert = found[0] if len(found) == 1 else None
    if alert is None:
        raise NotFound(_("No alert with code %(code)s.", code=code))
    return alert


def by_identifier(identifier: str) -> Alert | None:
    """The alert whose current or any earlier CAP identifier is `identifier`."""
    alert = db.session.scalar(select(Alert).where(Alert.identifier == identifier))
    if alert is not None:
        return alert
    for candidate in db.session.scalars(select(Alert).where(Alert.version > 1)):
        if any(ref[1] == identifier for ref in candidate.references or ()):
            return candidate
    return None


def reads_alerts(user: User) -> bool:
    """Alert users act on alerts and administrators read them; nobody else sees them (pending
    alerts and the screens an alert targets included), in the admin or the API."""
    return user.is_active and (user.has_role(Role.ALERT) or user.has_role(Role.ADMIN))


def require_reader(user: User) -> User:
    if not reads_alerts(user):
        raise PermissionDenied(_("Only users with the alert role (and administrators, to read) "
                                 "see emergency alerts."))
    return user


def can_see(user: User, alert: Alert) -> bool:
    return reads_alerts(user) and (permissions.sees(user, alert.targets)
                                   or permissions.is_system_admin(user))


def list_for(user: User, *, status: str | None = None, limit: int = 200) -> list[Alert]:
    """Alerts `user` may see, newest first."""
    require_reader(user)
    query = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    if status:
        query = query.where(Alert.status == AlertStatus(status))
    return [a for a in db.session.scalars(query.limit(limit * 4)) if can_see(user, a)][:limit]


def in_force(now: datetime | None = None) -> list[Alert]:
    """ACTIVE alerts not yet expired (including those due to start), highest level first."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(Alert)
            .where(Alert.status.in_(IN_FORCE), Alert.expires_at > now)
            .order_by(Alert.level, Alert.issued_at, Alert.id)
        )
    )


def for_chain(alerts: Iterable[Alert], chain: Iterable[int]) -> list[Alert]:
    """The alerts aimed at one of the regions in `chain` (a screen's region and ancestors)."""
    ids = set(chain)
    return [a for a in alerts if any(r.id in ids for r in a.targets)]


def for_screen(screen: Screen, now: datetime | None = None) -> list[Alert]:
    return for_chain(in_force(now), revisions.chain_ids(screen.region))


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def alert_url(code: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/a/{code}"


def payload(alert: Alert) -> dict[str, Any]:
    """The AlertPayload of player/protocol.py."""
    return {
        "code": alert.code,
        "version": alert.version,
        "level": alert.level,
        "color": protocol.LEVEL_COLORS[alert.level],
        "event": alert.event,
        "title": alert.title,
        "text": alert.text,
        "instruction": alert.instruction or "",
        "sender_name": alert.sender_name or "",
        "starts_at": iso(alert.starts_at),
        "expires_at": iso(alert.expires_at),
        "issued_at": iso(alert.issued_at or alert.created_at),
        "targets": [r.id for r in alert.targets],
        "url": alert_url(alert.code),
    }


def _targeted(targets: Iterable[Region]) -> Any:
    """The condition on Screen (joined to its Region) of the screens an alert reaches."""
    paths = [r.path for r in targets]
    return and_(Screen.revoked_at.is_(None), or_(*[Region.path.startswith(p) for p in paths]))


def targeted_screens(alert: Alert) -> list[Screen]:
    """The screens (not revoked) at or below the alert's targets."""
    if not alert.targets:
        return []
    return list(
        db.session.scalars(
            select(Screen)
            .join(Region, Screen.region_id == Region.id)
            .where(_targeted(alert.targets))
            .order_by(Screen.name, Screen.id)
        )
    )


def count_targeted(targets: Iterable[Region]) -> int:
    """How many screens (not revoked) stand at or below these regions."""
    targets = list(targets)
    if not targets:
        return 0
    return int(db.session.scalar(
        select(func.count(Screen.id)).join(Region, Screen.region_id == Region.id)
        .where(_targeted(targets))) or 0)


def count_targeted_online(targets: Iterable[Region], now: datetime | None = None) -> int:
    """How many of those screens are connected now (screens.is_online, in SQL): the ones an
    alert takes over at once; the others show it when they come back."""
    targets = list(targets)
    if not targets:
        return 0
    now = now or utcnow()
    return int(db.session.scalar(
        select(func.count(Screen.id)).join(Region, Screen.region_id == Region.id)
        .where(_targeted(targets), Screen.online.is_(True), Screen.connected_sid.is_not(None),
               Screen.last_seen_at >= now - timedelta(seconds=protocol.ONLINE_GRACE_SECONDS))
    ) or 0)


@dataclass
class DeliveryRow:
    screen: Screen
    delivery: AlertDelivery | None  # None: never sent to this screen (it was offline)

    @property
    def acknowledged(self) -> bool:
        return self.delivery is not None and self.delivery.acked_at is not None


@dataclass
class DeliveryReport:
    alert: Alert
    targeted: int
    acknowledged: int
    rows: list[DeliveryRow]  # the screens waiting first, at most the report's limit
    # Once the alert has ended: how many screens that had it took it down (their cleared_at).
    cleared: int = 0

    @property
    def waiting_count(self) -> int:
        return self.targeted - self.acknowledged

    @property
    def waiting(self) -> list[DeliveryRow]:
        """The waiting screens among `rows`."""
        return [r for r in self.rows if not r.acknowledged]


REPORT_ROWS = 200  # rows of a report by default: the waiting ones first


def delivery_report(alert: Alert, *, limit: int | None = REPORT_ROWS) -> DeliveryReport:
    """Acknowledged / targeted screens (counted in the database), and up to `limit` rows per
    screen (None: all of them; 0: counts only), the ones waiting first: has it acknowledged the
    current version, after how long, how many sends. Only a matching acknowledgement counts as
    delivered. Bounded work for an alert to 10,000 screens, polled while it goes out."""
    if not alert.targets:
        return DeliveryReport(alert, 0, 0, [])
    targeted = _targeted(alert.targets)
    current = and_(AlertDelivery.screen_id == Screen.id, AlertDelivery.alert_id == alert.id,
                   AlertDelivery.version == alert.version)
    total = int(db.session.scalar(
        select(func.count(Screen.id)).join(Region, Screen.region_id == Region.id)
        .where(targeted)) or 0)
    acked = int(db.session.scalar(
        select(func.count(Screen.id)).join(Region, Screen.region_id == Region.id)
        .join(AlertDelivery, current).where(targeted, AlertDelivery.acked_at.is_not(None))) or 0)
    rows: list[DeliveryRow] = []
    if limit != 0:
        waiting_first = case((AlertDelivery.acked_at.is_(None), 0), else_=1)
        stmt = (
            select(Screen, AlertDelivery)
            .join(Region, Screen.region_id == Region.id)
            .outerjoin(AlertDelivery, current)
            .where(targeted)
            .options(contains_eager(Screen.region))
            .order_by(waiting_first, Screen.name, Screen.id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        rows = [DeliveryRow(screen, delivery) for screen, delivery in db.session.execute(stmt)]
    cleared = 0
    if alert.ended_at is not None:
        cleared = int(db.session.scalar(
            select(func.count()).select_from(AlertDelivery).where(
                AlertDelivery.alert_id == alert.id, AlertDelivery.acked_at.is_not(None),
                AlertDelivery.cleared_at.is_not(None))) or 0)
    return DeliveryReport(alert, total, acked, rows, cleared)


# --- validation ----------------------------------------------------------------------------


def parse_level(value: int | str) -> int:
    """1–4 from 1, "2", "II", "Ⅲ", "红色", "orange"…; 0 when it is none of these."""
    from server.services.cap import CapError
    from server.services.cap import parse_level as cap_level

    if isinstance(value, int) and not isinstance(value, bool):
        return value if value in protocol.LEVEL_COLORS else 0
    try:
        return cap_level(str(value))
    except CapError:
        return 0


def _new_code() -> str:
    for _attempt in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if db.session.scalar(select(Alert.id).where(func.lower(Alert.code) == code)) is None:
            return code  # (older codes are mixed-case: none may read as this one)
    raise RuntimeError("could not find a free alert code")


def _clean(value: str, limit: int, name: str, errors: dict[str, str], *, required: bool) -> str:
    text = clean_text(value or "").strip()
    if required and not text:
        errors[name] = _("This field is required.")
    elif len(text) > limit:
        errors[name] = _("At most %(max)s characters (this has %(n)s).", max=limit, n=len(text))
    return text


def validate(actor: User, data: AlertInput, *, now: datetime | None = None) -> list[Region]:
    """Check everything at once; one ValidationError names each bad field. Returns the
    targets. Raises PermissionDenied when the actor holds no alert role at all."""
    now = now or utcnow()
    if not actor.has_role(Role.ALERT) or not actor.is_active:
        raise PermissionDenied(_("Only users with the alert role may issue emergency alerts."))
    errors: dict[str, str] = {}
    level = parse_level(data.level)
    if not level:
        errors["level"] = _("Choose a level from I (red) to IV (blue).")
    data.level = level
    data.event = _clean(data.event, EVENT_MAX, "event", errors, required=True)
    data.title = _clean(data.title, TITLE_MAX, "title", errors, required=True)
    data.text = _clean(data.text, TEXT_MAX, "text", errors, required=True)
    data.instruction = _clean(data.instruction, TEXT_MAX, "instruction", errors, required=False)
    data.sender_name = _clean(data.sender_name, SENDER_NAME_MAX, "sender_name", errors,
                              required=False)
    regions, missing = _resolve_regions(list(data.targets or []))
    if missing:
        errors["targets"] = _("Unknown region: %(codes)s.", codes=", ".join(missing))
    elif not regions:
        errors["targets"] = _("Choose at least one region to alert.")
    elif not permissions.covers(actor, Role.ALERT, regions):
        outside = [r.name for r in regions if not permissions.covers(actor, Role.ALERT, [r])]
        errors["targets"] = _(
            "Outside the regions you may alert: %(names)s.", names="、".join(outside)
        )
    starts = data.starts_at or now
    expires = data.expires_at or (starts + DEFAULT_DURATION)
    if expires <= starts:
        errors["expires_at"] = _("The expiry must be after the start.")
    elif expires <= now:
        errors["expires_at"] = _("The expiry must be in the future.")
    elif expires - starts > MAX_DURATION:
        errors["expires_at"] = _("An alert lasts at most %(days)s days; issue a new one after.",
                                 days=MAX_DURATION.days)
    data.starts_at, data.expires_at = starts, expires
    if errors:
        raise ValidationError(errors)
    return regions


def two_person_rule() -> bool:
    return bool(current_app.config.get("ALERT_TWO_PERSON"))


def _sender() -> str:
    return str(current_app.config.get("CAP_SENDER") or "cunping")


def _identifier(code: str, version: int) -> str:
    return f"CUNPING-{code}-{version}"


def _changed(alert: Alert, region_ids: Iterable[int], reason: str) -> None:
    """After the commit: tell the dispatchers (this process at once, others by the counter)."""
    signals.alerts_changed.send(
        current_app._get_current_object(),
        alert_ids=[alert.id],
        region_ids=sorted(set(region_ids)),
        reason=reason,
    )


def _go_live(alert: Alert, now: datetime) -> None:
    alert.status = AlertStatus.ACTIVE
    alert.issued_at = now
    alert.updated_at = now


# --- writing -------------------------------------------------------------------------------


def issue(actor: User, data: AlertInput, *, source: str = "admin",
          confirmed: bool | None = None) -> Alert:
    """A new alert: in force at once, or PENDING under the two-person rule. `confirmed=True`
    skips the rule (a CAP message from the county's warning system is already authorised)."""
    now = utcnow()
    regions = validate(actor, data, now=now)
    code = _new_code()
    needs_second = two_person_rule() if confirmed is None else not confirmed
    alert = Alert(
        code=code,
        identifier=data.identifier or _identifier(code, 1),
        sender=data.sender or _sender(),
        references=[],
        version=1,
        status=AlertStatus.PENDING if needs_second else AlertStatus.ACTIVE,
        level=int(data.level),
        event=data.event,
        title=data.title,
        text=data.text,
        instruction=data.instruction,
        sender_name=data.sender_name,
        cap_status=data.cap_status or "Actual",
        severity=data.severity,
        urgency=data.urgency,
        certainty=data.certainty,
        source=source,
        starts_at=data.starts_at,
        expires_at=data.expires_at,
        created_at=now,
        updated_at=now,
        issued_by=actor,
        targets=regions,
        authors=[actor.id],
    )
    if by_identifier(alert.identifier) is not None:
        raise Conflict(_("An alert with identifier %(id)s exists already.", id=alert.identifier))
    if not needs_second:
        _go_live(alert, now)
    db.session.add(alert)
    db.session.flush()
    audit.record(actor, "alert", alert.id, "issue", to_state=alert.status.value,
                 detail={"code": code, "level": alert.level, "source": source,
                         "targets": [r.code for r in regions]})
    revisions.next_value(COUNTER)
    db.session.commit()
    if alert.status == AlertStatus.ACTIVE:
        _changed(alert, [r.id for r in regions], "issue")
    return alert


def _require_alert_role(actor: User, alert: Alert, what: str) -> None:
    permissions.require(actor, Role.ALERT, alert.targets, what)


def awaiting(alert: Alert) -> int | None:
    """The version waiting for a second person: a pending alert's own, or the proposed change
    of an alert in force; None when nothing waits."""
    if alert.status == AlertStatus.PENDING:
        return alert.version
    if alert.status == AlertStatus.ACTIVE and alert.proposal:
        return int(alert.proposal["version"])
    return None


def authors_of_waiting(alert: Alert) -> list[int]:
    """Who wrote the version waiting for confirmation: none of them may confirm it."""
    if alert.status == AlertStatus.ACTIVE and alert.proposal:
        return [int(u) for u in alert.proposal.get("by", [])]
    ids = [int(u) for u in alert.authors or []]
    return ids if ids or alert.issued_by_id is None else [alert.issued_by_id]


def may_confirm(actor: User, alert: Alert) -> bool:
    """The button's question: something waits and `actor` did not write it."""
    return awaiting(alert) is not None and actor.id not in authors_of_waiting(alert)


def confirm(actor: User, alert: Alert, version: Any) -> Alert:
    """The second person confirms the exact version they read (`version`, as shown to them):
    a pending alert goes into force, or the waiting change of an alert in force is made. Its
    issuer and everyone who edited that version may not; a version changed since is refused."""
    _require_alert_role(actor, alert, _("confirm this alert"))
    waiting = awaiting(alert)
    if waiting is None:
        raise Conflict(_("Nothing about this alert is waiting for confirmation."))
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationError({"version": _("Name the version you confirm.")})
    if version != waiting:
        raise Conflict(_("The alert changed after you read it (version %(old)s, now %(new)s): "
                         "read it again before you confirm.", old=version, new=waiting))
    if actor.id in authors_of_waiting(alert):
        raise PermissionDenied(_("Another person must confirm what you issued or changed."))
    now = utcnow()
    if alert.status == AlertStatus.PENDING:
        if alert.expires_at <= now:
            raise Conflict(_("This alert expired before it was confirmed; issue it again."))
        _go_live(alert, now)
        alert.confirmed_by = actor
        audit.record(actor, "alert", alert.id, "confirm", from_state="pending",
                     to_state="active", detail={"version": version})
        revisions.next_value(COUNTER)
        db.session.commit()
        _changed(alert, [r.id for r in alert.targets], "confirm")
        return alert
    proposal = dict(alert.proposal or {})
    if _parse_time(proposal["expires_at"]) <= now:
        alert.proposal = None
        db.session.commit()
        raise Conflict(_("The change would have ended already; it was dropped."))
    regions = list(db.session.scalars(select(Region).where(Region.id.in_(proposal["targets"]))))
    old_ids = [r.id for r in alert.targets]
    _apply(alert, _proposed_input(proposal), regions, version=version, now=now)
    alert.confirmed_by = actor
    alert.proposal = None
    audit.record(actor, "alert", alert.id, "confirm", from_state="active", to_state="active",
                 detail={"version": version, "level": alert.level,
                         "targets": [r.code for r in regions], "change_by": proposal["by"]})
    revisions.next_value(COUNTER)
    db.session.commit()
    _changed(alert, [*old_ids, *(r.id for r in regions)], "update")
    return alert


def reject(actor: User, alert: Alert, reason: str = "") -> Alert:
    """The second person refuses what waits: a pending alert ends as rejected; a change
    proposed to an alert in force is dropped (the alert stays as it is)."""
    _require_alert_role(actor, alert, _("reject this alert"))
    waiting = awaiting(alert)
    if waiting is None:
        raise Conflict(_("Nothing about this alert is waiting for confirmation."))
    reason = clean_text(reason or "").strip()[:REASON_MAX]
    if alert.status == AlertStatus.ACTIVE:
        audit.record(actor, "alert", alert.id, "reject", from_state="active", to_state="active",
                     reason=reason, detail={"version": waiting,
                                            "change_by": (alert.proposal or {}).get("by")})
        alert.proposal = None
        alert.updated_at = utcnow()
        db.session.commit()
        return alert
    alert.status = AlertStatus.REJECTED
    alert.ended_at = alert.updated_at = utcnow()
    alert.ended_by = actor
    alert.end_reason = reason
    audit.record(actor, "alert", alert.id, "reject", from_state="pending", to_state="rejected",
                 reason=reason, detail={"version": waiting})
    revisions.next_value(COUNTER)
    db.session.commit()
    return alert


def escalates(alert: Alert, level: int, regions: Sequence[Region]) -> bool:
    """A change that raises the level (I is highest) or reaches a region outside the current
    targets' subtrees: under the two-person rule, it waits for a second person."""
    if level < alert.level:
        return True
    return any(not any(t.contains(r) for t in alert.targets) for r in regions)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=None)


def _proposed_input(proposal: dict[str, Any]) -> AlertInput:
    return AlertInput(
        level=proposal["level"], event=proposal["event"], title=proposal["title"],
        text=proposal["text"], instruction=proposal["instruction"],
        sender_name=proposal["sender_name"], severity=proposal.get("severity", ""),
        urgency=proposal.get("urgency", ""), certainty=proposal.get("certainty", ""),
        starts_at=_parse_time(proposal["starts_at"]),
        expires_at=_parse_time(proposal["expires_at"]),
    )


def _apply(alert: Alert, data: AlertInput, regions: list[Region], *, version: int,
           now: datetime) -> None:
    """Make `data` the alert's current version (`version`)."""
    previous = [alert.sender, alert.identifier, iso(alert.issued_at or alert.created_at)]
    alert.references = [*(alert.references or []), previous]
    alert.version = version
    alert.identifier = data.identifier or _identifier(alert.code, alert.version)
    if data.sender:
        alert.sender = data.sender
    for name in ("event", "title", "text", "instruction", "sender_name", "starts_at",
                 "expires_at"):
        setattr(alert, name, getattr(data, name))
    alert.level = int(data.level)
    for name in ("severity", "urgency", "certainty"):
        if getattr(data, name):
            setattr(alert, name, getattr(data, name))
    alert.targets = regions
    alert.updated_at = now
    if alert.status == AlertStatus.ACTIVE:
        alert.issued_at = now


def update(actor: User, alert: Alert, data: AlertInput) -> Alert:
    """CAP Update: the alert changes in place (level, text, targets, times); screens get the
    new version and acknowledge it again. The earlier identifier goes into `references`.

    Two-person rule: a pending alert's new version needs a confirmation of its own (and its
    editor joins those who may not give it); a change to an alert in force that raises the
    level or widens the targets waits, as the alert's proposal, for a second person
    (`confirm`), while the alert stays on the screens as it was. Any other change to an alert
    in force acts at once, and drops a proposal made before it."""
    if alert.status not in (AlertStatus.ACTIVE, AlertStatus.PENDING):
        raise Conflict(_("Only an alert in force or waiting for confirmation can be updated."))
    _require_alert_role(actor, alert, _("update this alert"))
    now = utcnow()
    if data.starts_at is None:
        data.starts_at = alert.starts_at if alert.starts_at > now else now
    if data.expires_at is None:
        data.expires_at = alert.expires_at
    regions = validate(actor, data, now=now)
    old_ids = [r.id for r in alert.targets]
    if alert.status == AlertStatus.ACTIVE and two_person_rule() \
            and escalates(alert, int(data.level), regions):
        earlier = alert.proposal or {}
        version = max(alert.version, int(earlier.get("version", 0))) + 1
        by = [*(int(u) for u in earlier.get("by", []) if int(u) != actor.id), actor.id]
        alert.proposal = {
            "version": version, "by": by, "at": iso(now), "level": int(data.level),
            "event": data.event, "title": data.title, "text": data.text,
            "instruction": data.instruction, "sender_name": data.sender_name,
            "severity": data.severity, "urgency": data.urgency, "certainty": data.certainty,
            "starts_at": iso(data.starts_at), "expires_at": iso(data.expires_at),
            "targets": [r.id for r in regions],
        }
        audit.record(actor, "alert", alert.id, "propose", from_state="active",
                     to_state="active",
                     detail={"version": version, "level": int(data.level),
                             "targets": [r.code for r in regions]})
        db.session.commit()
        return alert
    dropped = alert.proposal
    alert.proposal = None
    version = max(alert.version, int(dropped["version"]) if dropped else 0) + 1
    _apply(alert, data, regions, version=version, now=now)
    if alert.status == AlertStatus.PENDING:
        alert.authors = [*(u for u in alert.authors or [] if u != actor.id), actor.id]
    audit.record(actor, "alert", alert.id, "update", from_state=alert.status.value,
                 to_state=alert.status.value,
                 detail={"version": alert.version, "level": alert.level,
                         "targets": [r.code for r in regions],
                         **({"dropped_change": dropped["version"]} if dropped else {})})
    revisions.next_value(COUNTER)
    db.session.commit()
    if alert.status == AlertStatus.ACTIVE:
        _changed(alert, [*old_ids, *(r.id for r in regions)], "update")
    return alert


def cancel(actor: User, alert: Alert, reason: str = "") -> Alert:
    """CAP Cancel: the alert leaves every screen at once (one person, audited)."""
    if alert.status not in (AlertStatus.ACTIVE, AlertStatus.PENDING):
        raise Conflict(_("This alert is not in force."))
    _require_alert_role(actor, alert, _("cancel this alert"))
    reason = clean_text(reason or "").strip()[:REASON_MAX]
    was = alert.status
    alert.status = AlertStatus.CANCELLED
    alert.proposal = None
    alert.ended_at = alert.updated_at = utcnow()
    alert.ended_by = actor
    alert.end_reason = reason
    audit.record(actor, "alert", alert.id, "cancel", from_state=was.value,
                 to_state="cancelled", reason=reason)
    revisions.next_value(COUNTER)
    db.session.commit()
    if was == AlertStatus.ACTIVE:
        _changed(alert, [r.id for r in alert.targets], "cancel")
    return alert


def expire_due(now: datetime | None = None) -> list[int]:
    """Mark alerts past their expiry EXPIRED (the scheduler's tick). Players drop an expired
    alert by themselves at `expires_at`; this keeps the admin and the counts right. Safe from
    several processes at once: each alert is a compare-and-set on its status, so one process
    expires it (one audit entry, one signal). Returns the ids this call expired; commits."""
    now = now or utcnow()
    live = (AlertStatus.ACTIVE, AlertStatus.PENDING)
    due = list(
        db.session.scalars(
            select(Alert).where(Alert.status.in_(live), Alert.expires_at <= now)
        )
    )
    won: list[Alert] = []
    for alert in due:
        was = alert.status
        taken = db.session.execute(
            sql_update(Alert)
            .where(Alert.id == alert.id, Alert.status.in_(live))
            .values(status=AlertStatus.EXPIRED, ended_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not taken:  # another process expired (or someone cancelled) it meanwhile
            continue
        audit.record(None, "alert", alert.id, "expire", from_state=was.value,
                     to_state="expired")
        won.append(alert)
    if not won:
        db.session.commit()
        return []
    revisions.next_value(COUNTER)
    db.session.commit()
    for alert in won:
        db.session.refresh(alert)
        _changed(alert, [r.id for r in alert.targets], "expire")
    return [a.id for a in won]


# --- delivery ------------------------------------------------------------------------------


CHUNK = 500  # ids per IN (...) list


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


# On PostgreSQL a pass's rows are one statement joined to an array, not one per screen (an
# alert to 10,000 screens: 10,000 inserts, then 10,000 acknowledgements — seconds of the
# dispatcher's loop before the API could show them, bench/load.py --profile).
_DELIVERIES_PG = text("""
    INSERT INTO alert_deliveries (alert_id, screen_id, version, attempts, first_sent_at,
                                  last_sent_at)
    SELECT :alert, u.id, :version, :attempts, CAST(:now AS timestamp), CAST(:now AS timestamp)
    FROM unnest(CAST(:ids AS integer[])) AS u(id)
""")
_ACKS_PG = text("""
    UPDATE alert_deliveries AS d
    SET acked_at = u.at, latency_ms = u.latency,
        attempts = CASE WHEN d.attempts < 1 THEN 1 ELSE d.attempts END,
        first_sent_at = coalesce(d.first_sent_at, u.at),
        last_sent_at = coalesce(d.last_sent_at, u.at)
    FROM unnest(CAST(:ids AS integer[]), CAST(:at AS timestamp[]), CAST(:latency AS integer[]))
        AS u(id, at, latency)
    WHERE d.alert_id = :alert AND d.screen_id = u.id AND d.acked_at IS NULL
""")


def _postgresql() -> bool:
    return bool(db.session.get_bind().dialect.name == "postgresql")


def _ensure_rows(alert: Alert, screen_ids: Iterable[int], now: datetime | None = None,
                 ) -> set[int]:
    """Delivery rows for the alert's current version exist for these screens (Core statements:
    a pass for 10,000 screens must not build 10,000 ORM objects). The rows made here count as
    sent once at `now` when it is given. Returns the screens whose rows were made."""
    table = AlertDelivery.__table__
    db.session.execute(
        sql_update(table)
        .where(table.c.alert_id == alert.id, table.c.version != alert.version)
        .values(version=alert.version, attempts=0, acked_at=None, latency_ms=None,
                first_sent_at=None, last_sent_at=None)
    )
    existing = set(db.session.scalars(
        select(table.c.screen_id).where(table.c.alert_id == alert.id)))
    missing = sorted(set(screen_ids) - existing)
    if missing and _postgresql():
        db.session.execute(_DELIVERIES_PG, {
            "alert": alert.id, "version": alert.version, "ids": missing,
            "attempts": 1 if now else 0, "now": now})
    elif missing:
        sent = {"attempts": 1, "first_sent_at": now, "last_sent_at": now} if now else {
            "attempts": 0}
        db.session.execute(table.insert(), [
            {"alert_id": alert.id, "screen_id": sid, "version": alert.version, **sent}
            for sid in missing
        ])
    return set(missing)


def record_sends(sends: Iterable[tuple[int, Iterable[int]]],
                 now: datetime | None = None) -> None:
    """One more send to each screen of these alerts (screen id, alert ids): the dispatcher
    calls this once per pass. A first send makes the row; later ones count up."""
    now = now or utcnow()
    by_alert: dict[int, list[int]] = {}
    for screen_id, ids in sends:
        for alert_id in ids:
            by_alert.setdefault(alert_id, []).append(screen_id)
    if not by_alert:
        return
    table = AlertDelivery.__table__
    for alert in db.session.scalars(select(Alert).where(Alert.id.in_(list(by_alert)))):
        screen_ids = set(by_alert[alert.id])
        again = sorted(screen_ids - _ensure_rows(alert, screen_ids, now))
        for chunk in _chunks(again):
            db.session.execute(
                sql_update(table)
                .where(table.c.alert_id == alert.id, table.c.screen_id.in_(chunk),
                       table.c.acked_at.is_(None))
                .values(attempts=table.c.attempts + 1, last_sent_at=now,
                        first_sent_at=func.coalesce(table.c.first_sent_at, now))
            )
    db.session.commit()


def parse_keys(have: Any) -> dict[str, int]:
    """{"code": version} from an acknowledgement's ["code:version", ...] (junk ignored)."""
    wanted: dict[str, int] = {}
    if not isinstance(have, list):
        return wanted
    for item in have[: protocol.MAX_ALERTS]:
        if isinstance(item, str) and ":" in item and len(item) <= 40:
            code, _sep, version = item.rpartition(":")
            if version.isdigit():
                wanted[code] = int(version)
    return wanted


def record_acks(acks: Iterable[tuple[int, Any, datetime]]) -> int:
    """Players' acknowledgements: (screen id, ["code:version", ...], when). Each matching
    (alert, current version) becomes delivered, with the time since it was put in force.
    Returns how many deliveries were new."""
    parsed = [(screen_id, parse_keys(have), when) for screen_id, have, when in acks]
    _record_cleared(parsed)
    parsed = [p for p in parsed if p[1]]
    if not parsed:
        db.session.commit()
        return 0
    codes = {code for _s, keys, _w in parsed for code in keys}
    alerts = {a.code: a for a in db.session.scalars(select(Alert).where(Alert.code.in_(codes)))}
    params: dict[int, list[dict[str, Any]]] = {}
    for screen_id, keys, when in parsed:
        for code, version in keys.items():
            alert = alerts.get(code)
            if alert is None or version != alert.version:
                continue  # an unknown alert or an old version is not the alert in force
            since = alert.issued_at or alert.created_at
            params.setdefault(alert.id, []).append({
                "a": alert.id, "s": screen_id, "w": when,
                "l": max(0, int((when - since).total_seconds() * 1000)),
            })
    if not params:
        db.session.commit()
        return 0
    table = AlertDelivery.__table__
    stmt = (
        sql_update(table)
        .where(table.c.alert_id == bindparam("a"), table.c.screen_id == bindparam("s"),
               table.c.acked_at.is_(None))
        .values(acked_at=bindparam("w"), latency_ms=bindparam("l"),
                attempts=case((table.c.attempts < 1, 1), else_=table.c.attempts),
                first_sent_at=func.coalesce(table.c.first_sent_at, bindparam("w")),
                last_sent_at=func.coalesce(table.c.last_sent_at, bindparam("w")))
    )
    fresh = 0
    for alert_id, rows in params.items():
        alert = db.session.get(Alert, alert_id)
        assert alert is not None
        _ensure_rows(alert, [r["s"] for r in rows])
        before = _acked_count(alert_id)
        if _postgresql():
            first: dict[int, dict[str, Any]] = {}
            for r in rows:  # a screen once per statement: its first ack is the delivery
                first.setdefault(r["s"], r)
            ordered = [first[screen_id] for screen_id in sorted(first)]
            db.session.execute(_ACKS_PG, {
                "alert": alert_id, "ids": [r["s"] for r in ordered],
                "at": [r["w"] for r in ordered], "latency": [r["l"] for r in ordered]})
        else:
            db.session.connection().execute(stmt, rows)
        fresh += _acked_count(alert_id) - before
    db.session.commit()
    return fresh


CLEARED_WINDOW = timedelta(days=1)  # how long after its end a take-down is still recorded


def _record_cleared(parsed: list[tuple[int, dict[str, int], datetime]]) -> None:
    """Screens that had an alert which has since ended, acknowledging a set without it, took
    it down: their delivery rows say when (the report after a cancellation lists them)."""
    if not parsed:
        return
    ended = db.session.execute(
        select(Alert.id, Alert.code, Alert.ended_at, Alert.expires_at).where(
            Alert.status.in_((AlertStatus.CANCELLED, AlertStatus.EXPIRED)),
            Alert.ended_at >= utcnow() - CLEARED_WINDOW)).all()
    table = AlertDelivery.__table__
    for alert_id, code, ended_at, expires_at in ended:
        # (players drop an expired alert at its expiry, before the scheduler marks it)
        ended_at = min(ended_at, expires_at)
        first: dict[int, datetime] = {}
        for screen_id, keys, when in parsed:
            if code not in keys and when >= ended_at:
                first.setdefault(screen_id, when)
        for chunk in _chunks(sorted(first)):
            db.session.connection().execute(
                sql_update(table)
                .where(table.c.alert_id == alert_id, table.c.screen_id == bindparam("s"),
                       table.c.cleared_at.is_(None))
                .values(cleared_at=bindparam("w")),
                [{"s": screen_id, "w": first[screen_id]} for screen_id in chunk])


def _acked_count(alert_id: int) -> int:
    table = AlertDelivery.__table__
    return int(db.session.scalar(
        select(func.count()).select_from(table)
        .where(table.c.alert_id == alert_id, table.c.acked_at.is_not(None))) or 0)
