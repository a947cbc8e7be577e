"""Signed alerts, checked by the player: a screen shows an emergency alert set only when the
county's alert key signed it (docs/alerts.md, "Signed alerts").

The county's public keys come from player.toml (`alert_keys`), else from pairing (the server
hands them over with the token, and the player keeps them). A player with no key shows every
well-formed set, as before signing existed; once it has a key it never shows an unsigned set.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from player import protocol

UNSIGNED = "unsigned"
UNKNOWN_KEY = "unknown key"
BAD_SIGNATURE = "bad signature"
REPLAYED = "older than the set shown"
REASONS = (UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE, REPLAYED)


class BadKey(ValueError):
    """A public key that is not base64 of 32 bytes."""


def parse_key(text: str) -> bytes:
    """A public key as configured: base64 of the raw 32 bytes (what `cunping alert-key show`
    prints)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"alert key {text[:20]!r}… is not base64") from None
    if len(raw) != 32:
        raise BadKey(f"alert key {text[:20]!r}… is not an Ed25519 public key (32 bytes)")
    return raw


class AlertKeys:
    """The county's public keys, by key id (two during a rotation)."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text in keys:
            raw = parse_key(text)
            self._keys[protocol.key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def ids(self) -> list[str]:
        return sorted(self._keys)

    def refusal(self, message: dict[str, Any], last_time: datetime | None) -> str | None:
        """None when `message` (a well-formed ALERTS) may be shown; else why not. `last_time`:
        the server_time of the last set taken (a replayed older set is refused)."""
        if not self._keys:
            return None
        signature = message.get("signature")
        if not isinstance(signature, dict) or signature.get("alg") != protocol.SIGNATURE_ALG:
            return UNSIGNED
        key = self._keys.get(str(signature.get("key")))
        if key is None:
            return UNKNOWN_KEY
        try:
            value = base64.b64decode(str(signature.get("value")), validate=True)
            key.verify(value, protocol.signed_part(message))
        except (binascii.Error, ValueError, InvalidSignature):
            return BAD_SIGNATURE
        sent = signed_time(message)
        if sent is None:
            return BAD_SIGNATURE
        if last_time is not None and \
                (last_time - sent).total_seconds() > protocol.SIGNED_TIME_SLACK:
            return REPLAYED
        return None


def signed_time(message: dict[str, Any]) -> datetime | None:
    """The server_time of a set (UTC, naive), None when missing or unreadable."""
    value = message.get("server_time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
