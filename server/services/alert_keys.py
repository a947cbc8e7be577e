"""The county alert key: every alert set the server sends to a screen is signed with it, so a
player holding the county's public key shows an alert only when this server's key signed it
(docs/alerts.md, "Signed alerts"; the player's side is player/signing.py).

Ed25519 (through `cryptography`), a PEM file apart from the web secret, readable by the service
user only: `cunping alert-key create` makes it, `cunping alert-key show` prints the public key
for player.toml. A server without the file sends unsigned sets (and says so at start); a key
file readable by others is refused, like ssh refuses such a private key.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from flask import Flask

from player import protocol, signing


class AlertKeyError(RuntimeError):
    """The key file cannot be used; the message says why and how to fix it."""


def key_path(app: Flask) -> Path:
    return Path(app.config.get("ALERT_KEY_FILE") or Path(app.instance_path) / "alert-key.pem")


def public_text(key: Ed25519PublicKey) -> str:
    """A public key as players configure it: base64 of its raw 32 bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def create(path: Path, *, replace: bool = False) -> Ed25519PrivateKey:
    """A new key in `path` (mode 0600, its folder 0700 when made here)."""
    if path.exists() and not replace:
        raise AlertKeyError(f"{path} exists already (a key in use: see docs/alerts.md, "
                            "\"Rotating the key\")")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    temp = path.with_name(path.name + ".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)
    return key


def load(path: Path) -> Ed25519PrivateKey | None:
    """The key in `path`; None when there is no file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AlertKeyError(f"the alert key {path} can be read by others "
                            f"(mode {stat.filemode(mode)}): chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise AlertKeyError(f"the alert key {path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AlertKeyError(f"the alert key {path} is not an Ed25519 key")
    return key


class Signer:
    """Signs ALERTS messages. The same set at the same second is signed once (a storm's
    connects share it)."""

    def __init__(self, key: Ed25519PrivateKey, announce: list[str] | None = None) -> None:
        self.key = key
        self.public = public_text(key.public_key())
        raw = base64.b64decode(self.public)
        self.key_id = protocol.key_id(raw)
        # The keys the players are to hold (this one, and the next during a rotation): part of
        # every signed message, so a player pinned at pairing follows a rotation.
        self.announce = announce or [self.public]
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_time: Any = None

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        """`message` ({"alerts", "server_time"}) with "keys" and "signature" added."""
        message = {**message, "keys": self.announce}
        body = protocol.signed_part(message)
        if message.get("server_time") != self._cache_time:
            self._cache, self._cache_time = {}, message.get("server_time")
        signature = self._cache.get(body.decode())
        if signature is None:
            value = base64.b64encode(self.key.sign(body)).decode()
            signature = self._cache[body.decode()] = {
                "alg": protocol.SIGNATURE_ALG, "key": self.key_id, "value": value}
        message["signature"] = signature
        return message


def signer(app: Flask) -> Signer | None:
    """The app's signer (None without a key file); CUNPING_ALERT_NEXT_KEY names the next public
    key during a rotation."""
    path = key_path(app)
    key = load(path)
    if key is None:
        return None
    announce = [public_text(key.public_key())]
    following = app.config.get("ALERT_NEXT_KEY")
    if following:
        try:
            signing.parse_key(following)
        except signing.BadKey as exc:
            raise AlertKeyError(f"CUNPING_ALERT_NEXT_KEY: {exc}") from None
        if following not in announce:
            announce.append(following)
    return Signer(key, announce)
