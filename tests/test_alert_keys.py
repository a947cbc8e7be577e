"""The county alert key (server/services/alert_keys.py): made and kept apart from the web
secret, readable by its owner only; every ALERTS the dispatcher sends is signed with it and
verifies with the public key; pairing hands the key over; a player's refusal is counted."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from player import protocol, signing
from server.realtime.state import state
from server.services import alert_keys, alerts
from server.services import screens as screen_service
from tests.conftest import AuthActions, World
from tests.test_alerts import NS, Screen, data
from tests.test_realtime import SECRET, connect, events


def test_the_key_file_is_made_for_its_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "alert-key.pem"
    key = alert_keys.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert alert_keys.public_text(alert_keys.load(path).public_key()) == \
        alert_keys.public_text(key.public_key())
    with pytest.raises(alert_keys.AlertKeyError, match="exists already"):
        alert_keys.create(path)
    replaced = alert_keys.create(path, replace=True)
    assert alert_keys.public_text(replaced.public_key()) != alert_keys.public_text(
        key.public_key())


def test_a_key_others_can_read_or_that_is_no_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alert-key.pem"
    assert alert_keys.load(path) is None  # none: sets go unsigned
    alert_keys.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(alert_keys.AlertKeyError, match="chmod 600"):
        alert_keys.load(path)
    path.write_text("not a key")
    os.chmod(path, 0o600)
    with pytest.raises(alert_keys.AlertKeyError, match="not a PEM"):
        alert_keys.load(path)


def test_the_cli_makes_the_key_apart_from_the_web_secret_and_prints_the_public_key(
    app: Flask, tmp_path: Path
) -> None:
    app.config["ALERT_KEY_FILE"] = str(tmp_path / "county" / "alert-key.pem")
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["alert-key", "show"])
    assert shown.exit_code != 0 and "cunping alert-key create" in shown.output
    made = runner.invoke(args=["alert-key", "create"])
    assert made.exit_code == 0, made.output
    key = alert_keys.load(Path(app.config["ALERT_KEY_FILE"]))
    assert key is not None
    public = alert_keys.public_text(key.public_key())
    assert f'alert_keys = ["{public}"]' in made.output
    assert public in runner.invoke(args=["alert-key", "show"]).output
    assert app.config["SECRET_KEY"] not in Path(app.config["ALERT_KEY_FILE"]).read_text()
    assert runner.invoke(args=["alert-key", "create"]).exit_code != 0  # kept


def test_the_next_key_of_a_rotation_is_announced(app: Flask, tmp_path: Path) -> None:
    app.config["ALERT_KEY_FILE"] = str(tmp_path / "alert-key.pem")
    current = alert_keys.create(tmp_path / "alert-key.pem")
    following = alert_keys.public_text(Ed25519PrivateKey.generate().public_key())
    app.config["ALERT_NEXT_KEY"] = following
    signer = alert_keys.signer(app)
    assert signer is not None
    assert signer.announce == [alert_keys.public_text(current.public_key()), following]
    app.config["ALERT_NEXT_KEY"] = "bad"
    with pytest.raises(alert_keys.AlertKeyError, match="CUNPING_ALERT_NEXT_KEY"):
        alert_keys.signer(app)


@pytest.fixture
def signer(app: Flask, monkeypatch: pytest.MonkeyPatch) -> alert_keys.Signer:
    made = alert_keys.Signer(Ed25519PrivateKey.generate())
    monkeypatch.setattr(state(app).dispatcher, "signer", made)
    monkeypatch.setitem(app.extensions, alert_keys.EXTENSION, made)
    return made


def test_every_alert_set_sent_is_signed_and_verifies(app: Flask, world: World,
                                                     signer: alert_keys.Signer) -> None:
    keys = signing.AlertKeys([signer.public])
    screen = Screen(app, world.village, "屏")  # the empty set of the connect
    alert = alerts.issue(world.county_alert, data())
    sets = [e["args"][0] for e in screen.client.get_received(NS) if e["name"] == protocol.ALERTS]
    assert [[a["code"] for a in s["alerts"]] for s in sets] == [[], [alert.code]]
    for message in sets:
        assert message["signature"]["key"] == signer.key_id
        assert message["keys"] == [signer.public]
        assert keys.refusal(message, None) is None
    forged = {**sets[1], "alerts": [{**sets[1]["alerts"][0], "level": 1, "text": "假的"}]}
    assert keys.refusal(forged, None) == signing.BAD_SIGNATURE


def test_pairing_hands_over_the_countys_key(app: Flask, world: World,
                                            signer: alert_keys.Signer) -> None:
    player = connect(app, {"pairing": SECRET, "width": 1920, "height": 1080})
    (pairing,) = events(player, protocol.PAIRING)
    screen_service.claim_pairing(world.village_editor, pairing["code"], world.village, "村委会")
    (paired,) = events(player, protocol.PAIRED)
    assert paired["alert_keys"] == [signer.public]
    late = connect(app, {"pairing": SECRET})  # missed it: told again on its next connect
    assert events(late, protocol.PAIRED)[0]["alert_keys"] == [signer.public]


def test_a_refusal_is_counted_and_a_malformed_one_ignored(app: Flask, world: World) -> None:
    screen = Screen(app, world.village, "屏")

    def counted() -> float:
        return REGISTRY.get_sample_value("cunping_alert_refusals_total",
                                         {"reason": signing.UNKNOWN_KEY}) or 0.0

    before = counted()
    ack = screen.client.emit(protocol.ALERTS_REFUSED,
                             {"reason": signing.UNKNOWN_KEY, "key": "abcd"}, namespace=NS,
                             callback=True)
    assert ack == {"status": "ok"} and counted() == before + 1
    for bad in (None, {"reason": "whatever"}, {"reason": signing.UNSIGNED, "key": "x" * 41}):
        ack = screen.client.emit(protocol.ALERTS_REFUSED, bad, namespace=NS, callback=True)
        assert ack == {"status": "ignored", "reason": "malformed refusal"}
    assert counted() == before + 1


def test_screen_add_prints_the_countys_alert_key_for_the_player(
    app: Flask, world: World, signer: alert_keys.Signer
) -> None:
    from tests.test_cli import run

    code, out = run(app, "screen", "add", "--region", "V11", "--name", "村委会门口")
    assert code == 0, out
    assert f'alert_keys = ["{signer.public}"]' in out


def test_the_cap_export_is_signed_and_any_change_breaks_the_signature(
    app: Flask, world: World, signer: alert_keys.Signer
) -> None:
    from server.services import alert_cap

    alert = alerts.issue(world.county_alert, data())
    xml = alert_cap.export_cap(alert)
    assert xml.rstrip().endswith(b"</Signature></alert>") and signer.key_id.encode() in xml
    assert alert_keys.verify_xml(xml, [signer.public]) is None
    other = alert_keys.public_text(Ed25519PrivateKey.generate().public_key())
    assert alert_keys.verify_xml(xml, [other]) == "unknown key"
    changed = xml.replace("柳河镇".encode(), "石桥镇".encode(), 1)
    assert changed != xml and alert_keys.verify_xml(changed, [signer.public]) == \
        "the message was changed"
    assert alert_keys.verify_xml(alert_cap.cap.to_cap(alert_cap.message_for(alert)),
                                 [signer.public]) == "unsigned"
    # The CAP reader takes a signed export back (the signature is one more element).
    assert alert_cap.cap.parse_cap(xml).identifier == alert.identifier


def test_the_api_and_the_admin_serve_the_signed_cap(
    app: Flask, world: World, signer: alert_keys.Signer, client: FlaskClient,
    auth: AuthActions
) -> None:
    from tests.test_api_alerts import auth_for

    alert = alerts.issue(world.county_alert, data())
    api = client.get(f"/api/v1/alerts/{alert.code}.cap", headers=auth_for(world.county_alert))
    assert api.status_code == 200 and alert_keys.verify_xml(api.data, [signer.public]) is None
    auth.login("calert")
    page = client.get(f"/admin/alerts/{alert.code}/cap.xml")
    assert page.status_code == 200 and alert_keys.verify_xml(page.data, [signer.public]) is None
