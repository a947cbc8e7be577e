"""Signed alerts on the player (player/signing.py, PlayerClient.handle_alerts): a player holding
the county's key shows only sets that key signed, refuses the others and says why, keeps what
it shows, pins keys at pairing and follows a rotation announced in a signed set."""

from __future__ import annotations

import base64
import queue
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from player import config, protocol, signing
from player.client import PlayerClient
from player.store import Store
from server.services.alert_keys import Signer, public_text
from tests.player.conftest import iso, make_alert
from tests.player.test_alerts import Screen, Sent, namespace


def answers(link: PlayerClient, payload: Any) -> list[tuple[str, Any]]:
    ns = namespace(link)
    ns.on_alerts(payload)
    sent: Sent = ns.client  # type: ignore[assignment]
    return [(e, d) for e, d, _n in sent.events]


def signed(signer: Signer, *alerts: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return signer.sign({"alerts": list(alerts),
                        "server_time": iso(at or datetime.now(UTC)).replace("+00:00", "Z")})


@pytest.fixture
def county() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


def make_link(tmp_path: Path, keys: list[str] | tuple[str, ...] = ()) -> PlayerClient:
    store = Store(tmp_path / "data")
    store.set_token("token-abcdefgh")
    return PlayerClient("http://127.0.0.1:9", store, queue.Queue(), version="9.9",
                        size=(1920, 1080), alert_keys=keys)


def test_a_set_the_county_signed_is_shown_and_acknowledged(tmp_path: Path,
                                                            county: Signer) -> None:
    link = make_link(tmp_path, [county.public])
    screen = Screen(link.work)
    try:
        message = signed(county, make_alert("AL1"))
        assert message["signature"]["key"] == county.key_id
        assert answers(link, message) == [(protocol.ALERTS_ACK, {"have": ["AL1:1"]})]
        assert [a["code"] for a in link.alerts] == ["AL1"]
    finally:
        screen.close()


@pytest.mark.parametrize("forge, reason", [
    ("unsigned", signing.UNSIGNED),
    ("other key", signing.UNKNOWN_KEY),
    ("tampered", signing.BAD_SIGNATURE),
    ("garbage", signing.BAD_SIGNATURE),
    ("replayed", signing.REPLAYED),
])
def test_a_forged_set_is_refused_reported_and_changes_nothing(
    tmp_path: Path, county: Signer, forge: str, reason: str
) -> None:
    link = make_link(tmp_path, [county.public])
    screen = Screen(link.work)
    try:
        shown = make_alert("REAL")
        assert answers(link, signed(county, shown))[0][0] == protocol.ALERTS_ACK
        fake = make_alert("FAKE", level=1)
        if forge == "unsigned":
            message: dict[str, Any] = {"alerts": [fake], "server_time": iso(datetime.now(UTC))}
        elif forge == "other key":
            message = signed(Signer(Ed25519PrivateKey.generate()), fake)
        elif forge == "tampered":  # the county's own signature on another set
            message = {**signed(county, shown), "alerts": [fake]}
        elif forge == "garbage":
            message = {**signed(county, fake)}
            message["signature"] = {**message["signature"], "value": "!!not base64!!"}
        else:  # the county's old empty set, played back to clear the alert in force
            message = signed(county, at=datetime.now(UTC) - timedelta(minutes=5))
        items = len(screen.items)
        [(event, body)] = answers(link, message)
        assert event == protocol.ALERTS_REFUSED
        assert body["reason"] == reason
        assert [a["code"] for a in link.alerts] == ["REAL"]  # what it shows stays
        assert [a["code"] for a in link.store.load_alerts()[0]] == ["REAL"]
        assert len(screen.items) == items  # nothing handed to the screen
    finally:
        screen.close()


def test_a_set_a_little_older_than_the_last_is_taken(tmp_path: Path, county: Signer) -> None:
    """Two server processes' clocks differ a little: within SIGNED_TIME_SLACK it is no replay."""
    link = make_link(tmp_path, [county.public])
    screen = Screen(link.work)
    try:
        now = datetime.now(UTC)
        assert answers(link, signed(county, make_alert("A"), at=now))[0][0] == \
            protocol.ALERTS_ACK
        earlier = now - timedelta(seconds=protocol.SIGNED_TIME_SLACK - 5)
        assert answers(link, signed(county, at=earlier))[0][0] == protocol.ALERTS_ACK
        # …and the newest time is remembered across a restart of the player.
        again = make_link(tmp_path, [county.public])
        old = now - timedelta(seconds=protocol.SIGNED_TIME_SLACK + 5)
        assert answers(again, signed(county, at=old))[0] == (
            protocol.ALERTS_REFUSED, {"reason": signing.REPLAYED, "key": county.key_id})
    finally:
        screen.close()


def test_without_a_key_every_well_formed_set_is_shown(tmp_path: Path) -> None:
    link = make_link(tmp_path)
    screen = Screen(link.work)
    try:
        message = {"alerts": [make_alert("A")], "server_time": iso(datetime.now(UTC))}
        assert answers(link, message)[0][0] == protocol.ALERTS_ACK
    finally:
        screen.close()


def test_keys_are_pinned_at_pairing_and_a_signed_set_announces_the_next(
    tmp_path: Path, county: Signer
) -> None:
    link = make_link(tmp_path)
    link._on_paired({"token": "new-token-123456", "alert_keys": [county.public]})
    assert link.store.alert_keys() == [county.public]
    assert link.keys.ids() == [county.key_id]
    screen = Screen(link.work)
    try:
        assert answers(link, {"alerts": [], "server_time": iso(datetime.now(UTC))})[0] == (
            protocol.ALERTS_REFUSED, {"reason": signing.UNSIGNED, "key": None})
        # A rotation: the county announces its next key in a set signed with the current one.
        following = Signer(Ed25519PrivateKey.generate())
        rotating = Signer(county.key, [county.public, following.public])
        assert answers(link, signed(rotating))[0][0] == protocol.ALERTS_ACK
        assert sorted(link.store.alert_keys()) == sorted([county.public, following.public])
        # The server switched to the next key: its sets are taken, and announce it alone.
        assert answers(link, signed(following, make_alert("B")))[0][0] == protocol.ALERTS_ACK
        assert link.keys.ids() == [following.key_id]
        # A restarted player holds the pinned key; the retired one signs nothing it shows.
        again = make_link(tmp_path)
        assert again.keys.ids() == [following.key_id]
        assert answers(again, signed(county, make_alert("C")))[0][1]["reason"] == \
            signing.UNKNOWN_KEY
    finally:
        screen.close()


def test_the_config_keys_win_over_pinned_and_announced_ones(tmp_path: Path,
                                                            county: Signer) -> None:
    other = Signer(Ed25519PrivateKey.generate())
    link = make_link(tmp_path, [county.public])
    link._on_paired({"token": "new-token-123456", "alert_keys": [other.public]})
    assert link.keys.ids() == [county.key_id]
    screen = Screen(link.work)
    try:
        assert answers(link, signed(other, make_alert("X")))[0][1]["reason"] == \
            signing.UNKNOWN_KEY
    finally:
        screen.close()


@pytest.mark.parametrize("bad", [["not base64!"], [base64.b64encode(b"short").decode()], "x"])
def test_bad_keys_are_refused_where_they_come_from(tmp_path: Path, bad: Any) -> None:
    link = make_link(tmp_path)
    with pytest.raises(protocol.ProtocolError):
        link._on_paired({"token": "new-token-123456", "alert_keys": bad})
    assert link.store.alert_keys() == [] and not link.keys
    if isinstance(bad, list):
        with pytest.raises(config.ConfigError):
            config.load({"server": "http://x", "alert_keys": bad}, environ={})


def test_the_config_reads_keys_from_the_file_and_the_environment(tmp_path: Path) -> None:
    key = public_text(Ed25519PrivateKey.generate().public_key())
    toml = tmp_path / "player.toml"
    toml.write_text(f'server = "http://x"\nalert_keys = ["{key}"]\n')
    assert config.load({"config": str(toml)}, environ={}).alert_keys == (key,)
    env = {"CUNPING_PLAYER_SERVER": "http://x", "CUNPING_PLAYER_ALERT_KEYS": f"{key}, {key}"}
    assert config.load({}, environ=env).alert_keys == (key, key)
