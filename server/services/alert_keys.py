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
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
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


EXTENSION = "cunping.alert_signer"


def signer_for(app: Flask) -> Signer | None:
    """The app's signer, read once (None without a key file)."""
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = signer(app)
    found: Signer | None = app.extensions[EXTENSION]
    return found


def signer(app: Flask) -> Signer | None:
    """A signer from the key file (None without one); CUNPING_ALERT_NEXT_KEY names the next
    public key during a rotation."""
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


# --- CAP: an enveloped XML signature (CAP 1.2 §3.3.2.1, XML-DSig with Ed25519, RFC 9231) ------

DSIG = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EDDSA_ED25519 = "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed25519"


def _c14n(element: Any) -> bytes:
    from lxml import etree

    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))


def sign_xml(xml: bytes, signer: Signer) -> bytes:
    """`xml` (a CAP message) with a <Signature> as the last child of its root: the whole
    document (less the signature) digested with SHA-256 after exclusive canonicalisation, the
    SignedInfo signed with the county alert key; KeyName is the key id."""
    from lxml import etree

    root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    digest = base64.b64encode(hashlib.sha256(_c14n(root)).digest()).decode()
    ds = f"{{{DSIG}}}"
    signature = etree.SubElement(root, ds + "Signature", nsmap={None: DSIG})
    info = etree.SubElement(signature, ds + "SignedInfo")
    etree.SubElement(info, ds + "CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(info, ds + "SignatureMethod", Algorithm=EDDSA_ED25519)
    reference = etree.SubElement(info, ds + "Reference", URI="")
    transforms = etree.SubElement(reference, ds + "Transforms")
    etree.SubElement(transforms, ds + "Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, ds + "Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, ds + "DigestMethod", Algorithm=SHA256)
    etree.SubElement(reference, ds + "DigestValue").text = digest
    value = base64.b64encode(signer.key.sign(_c14n(info))).decode()
    etree.SubElement(signature, ds + "SignatureValue").text = value
    key_info = etree.SubElement(signature, ds + "KeyInfo")
    etree.SubElement(key_info, ds + "KeyName").text = signer.key_id
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def verify_xml(xml: bytes, public_keys: list[str]) -> str | None:
    """None when `xml` carries a valid signature (as sign_xml makes) by one of `public_keys`;
    else why not. For whoever receives a CAP export (and the tests)."""
    from lxml import etree

    try:
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False,
                                                             no_network=True))
    except etree.XMLSyntaxError:
        return "not XML"
    signature = root.find(f"{{{DSIG}}}Signature")
    if signature is None or signature is not root[len(root) - 1]:
        return "unsigned"
    keys = {protocol.key_id(signing.parse_key(k)): signing.parse_key(k) for k in public_keys}
    name = signature.findtext(f"{{{DSIG}}}KeyInfo/{{{DSIG}}}KeyName")
    if name not in keys:
        return "unknown key"
    info = signature.find(f"{{{DSIG}}}SignedInfo")
    method = info.find(f"{{{DSIG}}}SignatureMethod") if info is not None else None
    if info is None or method is None or method.get("Algorithm") != EDDSA_ED25519:
        return "unsupported signature"
    digest = info.findtext(f"{{{DSIG}}}Reference/{{{DSIG}}}DigestValue")
    value = signature.findtext(f"{{{DSIG}}}SignatureValue") or ""
    root.remove(signature)
    if digest != base64.b64encode(hashlib.sha256(_c14n(root)).digest()).decode():
        return "the message was changed"
    try:
        Ed25519PublicKey.from_public_bytes(keys[name]).verify(
            base64.b64decode(value), _c14n(info))
    except (InvalidSignature, ValueError):
        return "bad signature"
    return None
