"""Screens: provisioning, pairing, device tokens, and what each screen last reported.

Editors and admins of a region subtree manage the screens in it (services.permissions). A
screen's device token is shown once; only its SHA-256 is stored. A player without a token pairs:
it shows a 6-digit code, an editor claims the code for a region, and the player receives its
token over the realtime channel (or on its next connect with the same pairing secret).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import joinedload

from player import protocol
from server import signals
from server.extensions import db
from server.models import PairingRequest, Region, Role, Screen, User
from server.models.base import utcnow
from server.services import audit, permissions, qr, revisions
from server.services.errors import NotFound, PermissionDenied, ValidationError
from server.services.markup import clean_text
from server.services.notices import CODE_ALPHABET, CODE_LENGTH

NAME_MAX = 80
PAIRING_MINUTES = 15
PAIRING_PENDING_MAX = 1000  # pending requests at once; more are refused (a flood, not screens)
# One address (a village hall's boxes, or a whole county behind one NAT, pairing one by one):
# at most this many codes pending, and this many new codes a minute.
PAIRING_PER_ADDRESS = 50
PAIRING_PER_ADDRESS_MINUTE = 20
SIZE_MIN, SIZE_MAX = 160, 8192
TOKEN_PREFIX = "cps_"
STATE_KEYS = ("showing", "revision", "digest", "version", "uptime_s", "alert", "store_error",
              "clock_offset_s")


# Moved whenever a screen's token or region changes (revoke, move, new token): every server
# process's directory reads it each second and reloads when it moved, so a revoke from the
# command line or another process ends the connection here within seconds, with or without a
# message queue (server/realtime/state.py).
SCREENS_COUNTER = "screens"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    prefix = secrets.token_hex(4)
    return prefix, f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


def _new_code() -> str:
    for _attempt in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if get_by_code(code) is None:
            return code
    raise RuntimeError("could not find a free screen code")


def _emit(signal: Any, **kwargs: Any) -> None:
    signal.send(current_app._get_current_object(), **kwargs)  # type: ignore[attr-defined]


# --- reading -------------------------------------------------------------------------------


def names_by_code(codes: set[str]) -> dict[str, str]:
    """Screens' names (with their village) by code, for where a person reads which screen."""
    if not codes:
        return {}
    return {s.code: f"{s.name}（{s.region.name}）" for s in db.session.scalars(
        select(Screen).where(Screen.code.in_(codes)))}


def get_by_code(code: str) -> Screen | None:
    return db.session.scalar(select(Screen).where(Screen.code == code))


def get(code: str) -> Screen:
    screen = get_by_code(code)
    if screen is None:
        raise NotFound(_("No screen with code %(code)s.", code=code))
    return screen


def can_manage(actor: User, region: Region) -> bool:
    return permissions.covers(actor, Role.EDITOR, [region])


def list_for(actor: User) -> list[Screen]:
    """Screens in the subtrees where `actor` is an editor or admin, by region then name."""
    roots = [g.region for g in actor.grants if g.role in (Role.EDITOR, Role.ADMIN)]
    if not roots or not actor.is_active:
        return []
    stmt = (
        select(Screen)
        .join(Region, Region.id == Screen.region_id)
        .where(or_(*[Region.path.startswith(root.path) for root in roots]))
        .order_by(Region.path, Screen.name, Screen.id)
    )
    return list(db.session.scalars(stmt))


def list_all() -> list[Screen]:
    """Every screen (for the command line, which runs as the system)."""
    stmt = select(Screen).join(Region).order_by(Region.path, Screen.name, Screen.id)
    return list(db.session.scalars(stmt))


def is_online(screen: Screen, now: datetime | None = None) -> bool:
    """Connected, and heard from within protocol.ONLINE_GRACE_SECONDS."""
    now = now or utcnow()
    return bool(
        screen.online
        and screen.connected_sid
        and screen.revoked_at is None
        and screen.last_seen_at is not None
        and now - screen.last_seen_at <= timedelta(seconds=protocol.ONLINE_GRACE_SECONDS)
    )


def authenticate(token: str) -> Screen | None:
    """The screen holding this device token, unless it is unknown or revoked."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_secret(token)
    screen = db.session.scalar(
        select(Screen).options(joinedload(Screen.region)).where(Screen.token_hash == digest)
    )
    if screen is None or screen.revoked_at is not None or screen.token_hash is None:
        return None
    if not hmac.compare_digest(screen.token_hash, digest):
        return None
    return screen


# --- provisioning --------------------------------------------------------------------------


def _validate(name: str, width: int, height: int) -> str:
    errors: dict[str, str] = {}
    name = clean_text(name or "").strip()
    if not name or len(name) > NAME_MAX or "\n" in name:
        errors["name"] = _("Give the screen a name (one line, at most %(max)s characters).",
                           max=NAME_MAX)
    if not all(isinstance(v, int) and SIZE_MIN <= v <= SIZE_MAX for v in (width, height)):
        errors["size"] = _("The resolution must be between %(min)s and %(max)s pixels.",
                           min=SIZE_MIN, max=SIZE_MAX)
    if errors:
        raise ValidationError(errors)
    return name


def _require_scope(actor: User | None, region: Region) -> None:
    if actor is not None and not can_manage(actor, region):
        raise PermissionDenied(
            _("You may not manage screens in %(region)s: it is outside your regions.",
              region=region.name)
        )


def _create(
    actor: User | None, region: Region, name: str, width: int, height: int, how: str
) -> tuple[Screen, str]:
    prefix, token = _new_token()
    screen = Screen(
        code=_new_code(),
        name=name,
        region=region,
        token_hash=hash_secret(token),
        token_prefix=prefix,
        width=width,
        height=height,
        orientation="portrait" if height > width else "landscape",
        state={},
    )
    db.session.add(screen)
    db.session.flush()
    audit.record(
        actor,
        "screen",
        screen.id,
        how,
        detail={"code": screen.code, "name": name, "region": region.code, "prefix": prefix},
    )
    return screen, token


def provision(
    actor: User | None, region: Region, name: str, width: int = 1920, height: int = 1080
) -> tuple[Screen, str]:
    """A new screen with its device token (shown once; only the hash is kept). `actor` None
    is the command line."""
    _require_scope(actor, region)
    name = _validate(name, width, height)
    screen, token = _create(actor, region, name, width, height, "create")
    db.session.commit()
    return screen, token


def rename(actor: User, screen: Screen, name: str) -> Screen:
    _require_scope(actor, screen.region)
    name = _validate(name, screen.width, screen.height)
    old = screen.name
    screen.name = name
    audit.record(actor, "screen", screen.id, "rename", detail={"from": old, "to": name})
    db.session.commit()
    _emit(signals.screen_changed, screen_id=screen.id, sid=screen.connected_sid, reason="renamed")
    return screen


def change(actor: User, screen: Screen, *, name: str, region: Region) -> Screen:
    """The screen page's form: a new name and a new region, both checked before either is
    saved (a refused move must not leave the rename behind)."""
    _require_scope(actor, screen.region)
    renamed = (name or "").strip() != screen.name
    if renamed:
        _validate(name, screen.width, screen.height)
    if region.id != screen.region_id:
        _require_scope(actor, region)
    if renamed:
        rename(actor, screen, name)
    if region.id != screen.region_id:
        move(actor, screen, region)
    return screen


def move(actor: User, screen: Screen, region: Region) -> Screen:
    """Put the screen in another region; it reconnects to pick up that region's notices."""
    _require_scope(actor, screen.region)
    _require_scope(actor, region)
    old = screen.region
    if old.id == region.id:
        return screen
    screen.region = region
    sid = screen.connected_sid
    audit.record(
        actor, "screen", screen.id, "move", detail={"from": old.code, "to": region.code}
    )
    revisions.next_value(SCREENS_COUNTER)
    db.session.commit()
    _emit(
        signals.screen_changed, screen_id=screen.id, sid=sid, reason="moved", old_region_id=old.id
    )
    return screen


def revoke(actor: User | None, screen: Screen, reason: str = "") -> Screen:
    """The token stops working at once; a connected player is told and disconnected."""
    _require_scope(actor, screen.region)
    if screen.revoked_at is not None:
        return screen
    screen.revoked_at = utcnow()
    screen.online = False
    sid, screen.connected_sid = screen.connected_sid, None
    audit.record(
        actor, "screen", screen.id, "revoke", reason=reason, detail={"prefix": screen.token_prefix}
    )
    revisions.next_value(SCREENS_COUNTER)
    db.session.commit()
    _emit(signals.screen_changed, screen_id=screen.id, sid=sid, reason="revoked",
          message=clean_text(reason or "").strip()[:200])
    return screen


# --- pairing -------------------------------------------------------------------------------


def _pending_query(now: datetime) -> Any:
    return select(PairingRequest).where(
        PairingRequest.screen_id.is_(None), PairingRequest.expires_at > now
    )


def _new_pairing_code(now: datetime) -> str:
    for _attempt in range(50):
        code = f"{secrets.randbelow(1_000_000):06d}"
        taken = db.session.scalar(_pending_query(now).where(PairingRequest.code == code))
        if taken is None:
            return code
    raise RuntimeError("could not find a free pairing code")


def _clamp(value: Any, default: int) -> int:
    return value if isinstance(value, int) and SIZE_MIN <= value <= SIZE_MAX else default


def start_pairing(secret: str, width: int = 1920, height: int = 1080,
                  ip: str | None = None) -> PairingRequest:
    """The pairing request of the player holding `secret`: the same pending code until it
    expires, then a new one. A claimed request is returned as is (see `pairing_status`). One
    address holds at most PAIRING_PER_ADDRESS pending codes and gets at most
    PAIRING_PER_ADDRESS_MINUTE new ones a minute: one client cannot fill the county's."""
    if not isinstance(secret, str) or not 16 <= len(secret) <= 200:
        raise ValidationError({"pairing": _("A pairing secret is 16 to 200 characters.")})
    now = utcnow()
    digest = hash_secret(secret)
    # Tidy up: requests long expired, and delivered tokens nobody needs any more.
    db.session.execute(
        delete(PairingRequest).where(PairingRequest.expires_at < now - timedelta(days=1))
    )
    req = db.session.scalar(select(PairingRequest).where(PairingRequest.secret_hash == digest))
    if req is not None:
        # A claimed request whose token went out (or was never picked up) is finished: the
        # same player asking again starts over with a new code.
        finished = req.screen_id is not None and (req.token is None or req.expires_at <= now)
        if not finished and req.expires_at > now:
            db.session.commit()
            return req
    pending = db.session.scalar(
        select(db.func.count()).select_from(_pending_query(now).subquery())
    )
    if (pending or 0) >= PAIRING_PENDING_MAX:
        db.session.rollback()
        raise ValidationError({"pairing": _("Too many screens are waiting to be paired.")})
    address = (ip or "")[:45]
    if address:
        here = db.session.scalar(select(db.func.count()).select_from(
            _pending_query(now).where(PairingRequest.ip == address).subquery())) or 0
        lately = db.session.scalar(select(db.func.count()).select_from(PairingRequest).where(
            PairingRequest.ip == address,
            PairingRequest.created_at >= now - timedelta(minutes=1))) or 0
        if here >= PAIRING_PER_ADDRESS or lately >= PAIRING_PER_ADDRESS_MINUTE:
            db.session.rollback()
            raise ValidationError({"pairing": _(
                "Too many pairing codes from this address: pair the screens waiting first, "
                "or try again in a minute.")})
    code = _new_pairing_code(now)
    if req is None:
        req = PairingRequest(secret_hash=digest)
        db.session.add(req)
    req.screen_id, req.token = None, None
    req.code = code
    req.created_at = now
    req.expires_at = now + timedelta(minutes=PAIRING_MINUTES)
    req.width, req.height = _clamp(width, 1920), _clamp(height, 1080)
    req.ip = address
    db.session.commit()
    return req


def pairing_status(secret: str, width: int = 1920, height: int = 1080) -> dict[str, Any]:
    """What a player that pairs with `secret` should hear: {"token": ...} once claimed (until
    the screen first connects with it or it expires), {"code", "expires_at"} while waiting."""
    req = start_pairing(secret, width, height)
    if req.screen_id is not None and req.token:
        return {"token": req.token}
    return {"code": req.code, "expires_at": req.expires_at.isoformat(timespec="seconds") + "Z"}


def find_pairing(code: str) -> PairingRequest | None:
    code = (code or "").strip().replace(" ", "")
    return db.session.scalar(_pending_query(utcnow()).where(PairingRequest.code == code))


def claim_pairing(actor: User, code: str, region: Region, name: str) -> Screen:
    """An editor claims the code a player shows: a new screen in `region`; the player gets
    its token at once over the realtime channel."""
    _require_scope(actor, region)
    req = find_pairing(code)
    if req is None:
        raise ValidationError(
            {"code": _("No screen is waiting with this pairing code; check the code on the "
                       "screen (codes expire after %(n)s minutes).", n=PAIRING_MINUTES)}
        )
    name = _validate(name, req.width, req.height)
    screen, token = _create(actor, region, name, req.width, req.height, "pair")
    req.screen_id = screen.id
    req.token = token
    # The player has this long to pick its token up; then the plain copy is forgotten.
    req.expires_at = utcnow() + timedelta(minutes=PAIRING_MINUTES)
    db.session.commit()
    _emit(signals.screen_paired, request_id=req.id)
    return screen


def token_delivered(screen: Screen) -> None:
    """The screen connected with its token: forget the plain copy kept for pairing."""
    db.session.execute(
        PairingRequest.__table__.update()
        .where(PairingRequest.screen_id == screen.id, PairingRequest.token.is_not(None))
        .values(token=None)
    )


# --- connection state ----------------------------------------------------------------------


def record_connect(screen: Screen, sid: str, ip: str | None = None) -> None:
    """The screen connected on `sid`: online, seen today (one commit)."""
    from server.services import presence

    now = utcnow()
    screen.online = True
    screen.connected_sid = sid
    screen.last_seen_at = now
    screen.last_ip = (ip or "")[:64] or None
    token_delivered(screen)
    presence.seen(screen, now, commit=False)
    db.session.commit()


def record_disconnect(screen: Screen, sid: str) -> None:
    """Offline, unless a newer connection of the same screen already replaced this one."""
    if screen.connected_sid not in (sid, None):
        return
    screen.online = False
    screen.connected_sid = None
    db.session.commit()


def clean_state(data: Any) -> dict[str, Any] | None:
    """A heartbeat's fields, checked: None when it is not an object of the expected shape."""
    if not isinstance(data, dict):
        return None
    showing = data.get("showing")
    if showing is not None and not (isinstance(showing, str) and len(showing) <= 16):
        return None
    state: dict[str, Any] = {"showing": showing}
    for key, kind, limit in (("revision", int, None), ("uptime_s", int, None),
                             ("digest", str, 64), ("version", str, 32)):
        value = data.get(key)
        if value is None:
            state[key] = None
        elif isinstance(value, kind) and not isinstance(value, bool) and (
            limit is None or len(value) <= limit  # type: ignore[arg-type]
        ):
            state[key] = value
        else:
            return None
    alert = data.get("alert")  # the alert on screen now (optional: older players omit it)
    if alert is not None:
        if not (isinstance(alert, str) and len(alert) <= 16):
            return None
        state["alert"] = alert
    # A save to the box's storage failing now (disk full...): cut, not refused, when long —
    # the heartbeat still says the screen is alive.
    if "store_error" in data:
        error = data["store_error"]
        if error is not None and not isinstance(error, str):
            return None
        state["store_error"] = error[:protocol.MAX_STORE_ERROR] if error else None
    # The server's clock minus the box's; clamped, since a box that booted in 1970 is real.
    if "clock_offset_s" in data:
        offset = data["clock_offset_s"]
        if not isinstance(offset, int) or isinstance(offset, bool):
            return None
        state["clock_offset_s"] = max(-protocol.MAX_CLOCK_OFFSET_S,
                                      min(protocol.MAX_CLOCK_OFFSET_S, offset))
    return state


def record_heartbeat(screen: Screen, data: Any, sid: str | None = None) -> bool:
    """Store what the player reported at once; False (and nothing stored) for a malformed
    heartbeat. (The players' namespace writes them behind instead: services.heartbeats.)"""
    state = clean_state(data)
    if state is None:
        return False
    screen.state = state
    screen.last_seen_at = utcnow()
    if sid is not None and screen.revoked_at is None:
        screen.online = True
        screen.connected_sid = sid
    db.session.commit()
    return True


def describe(screen: Screen, *, region_name: str | None = None) -> dict[str, Any]:
    """The screen as the player (WELCOME) and the admin see it (`region_name`: its region's
    full name, when the caller has it)."""
    return {
        "code": screen.code,
        "name": screen.name,
        "region": region_name or screen.region.full_name,
        "region_id": screen.region_id,
        # Ancestors and itself: a notice aimed at any of these is for this screen.
        "region_chain": revisions.chain_ids(screen.region),
        # The screen's own page for residents (the standby slide's QR code).
        "public_url": qr.screen_url(current_app.config["PUBLIC_BASE_URL"], screen.code),
        "width": screen.width,
        "height": screen.height,
        "orientation": screen.orientation,
    }
