"""Screens through the services: provisioning, tokens, pairing, revisions, playlists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from player import protocol
from server.extensions import db
from server.models import AuditEvent, PairingRequest, RegionRevision
from server.models.base import utcnow
from server.services import notices, playlist, revisions
from server.services import screens as screen_service
from server.services.errors import PermissionDenied, ValidationError
from server.services.markup import to_blocks
from server.services.notices import NoticeInput
from tests.conftest import World

SECRET = "pairing-secret-0123456789"


def publish(world: World, targets: list[str], **kw: object) -> notices.Notice:
    editor = kw.pop("editor", world.county_editor)
    data = {
        "title": "关于召开村民代表会议的通知",
        "body": "定于本周六上午九点召开。\n\n| 项目 | 金额 |\n| --- | ---: |\n| 修路 | 1,200 |",
        "category": "village",
        "targets": targets,
    }
    data.update(kw)
    n = notices.create(editor, NoticeInput(**data))  # type: ignore[arg-type]
    notices.submit(editor, n)
    notices.approve(world.county_reviewer, n)
    notices.publish(editor, n)
    return n


def audit_actions(screen_id: int) -> list[str]:
    events = db.session.scalars(
        db.select(AuditEvent)
        .where(AuditEvent.entity == "screen", AuditEvent.entity_id == screen_id)
        .order_by(AuditEvent.id)
    )
    return [e.action for e in events]


# --- provisioning and tokens ---------------------------------------------------------------


def test_provision_gives_a_token_once_and_stores_only_its_hash(world: World) -> None:
    screen, token = screen_service.provision(world.village_editor, world.village, "村委会门口")
    assert token.startswith("cps_") and len(token) > 40
    assert screen.token_hash != token and token not in str(screen.token_hash)
    assert token.startswith("cps_" + screen.token_prefix)
    assert len(screen.code) == 6 and all(c in notices.CODE_ALPHABET for c in screen.code)
    assert (screen.width, screen.height, screen.orientation) == (1920, 1080, "landscape")
    assert screen_service.authenticate(token) is screen
    assert screen_service.get_by_code(screen.code) is screen
    assert audit_actions(screen.id) == ["create"]


def test_portrait_screen_and_bad_input(world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "竖屏", 1080, 1920)
    assert screen.orientation == "portrait"
    with pytest.raises(ValidationError) as err:
        screen_service.provision(None, world.village, "", 10, 99999)
    assert set(err.value.errors) == {"name", "size"}


@pytest.mark.parametrize("token", ["", "nope", "cps_0000_xxxx", "cp_abc", "x" * 5000])
def test_unknown_tokens_do_not_authenticate(world: World, token: str) -> None:
    screen_service.provision(None, world.village, "屏")
    assert screen_service.authenticate(token) is None


def test_editors_manage_screens_only_in_their_subtree(world: World) -> None:
    with pytest.raises(PermissionDenied):
        screen_service.provision(world.village_editor, world.other_village, "屏")
    with pytest.raises(PermissionDenied):
        screen_service.provision(world.village_reviewer, world.village, "屏")
    mine, _t = screen_service.provision(world.town_editor, world.village2, "后王庄")
    other, _t = screen_service.provision(world.admin, world.other_village, "南岭")
    assert screen_service.list_for(world.town_editor) == [mine]
    assert set(screen_service.list_for(world.admin)) == {mine, other}
    assert screen_service.list_for(world.nobody) == []
    with pytest.raises(PermissionDenied):
        screen_service.revoke(world.town_editor, other)


def test_rename_move_revoke_are_audited(world: World) -> None:
    screen, token = screen_service.provision(world.town_editor, world.village, "旧名")
    screen_service.rename(world.town_editor, screen, "新名")
    assert screen.name == "新名"
    screen_service.move(world.town_editor, screen, world.village2)
    assert screen.region is world.village2
    with pytest.raises(PermissionDenied):
        screen_service.move(world.town_editor, screen, world.other_village)
    screen_service.revoke(world.town_editor, screen, "丢失")
    assert screen.revoked_at is not None
    assert screen_service.authenticate(token) is None
    assert audit_actions(screen.id) == ["create", "rename", "move", "revoke"]


def test_is_online_needs_a_connection_and_a_recent_heartbeat(world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    assert not screen_service.is_online(screen)
    screen_service.record_connect(screen, "sid-1", "10.0.0.7")
    assert screen_service.is_online(screen) and screen.last_ip == "10.0.0.7"
    later = utcnow() + timedelta(seconds=protocol.ONLINE_GRACE_SECONDS + 5)
    assert not screen_service.is_online(screen, now=later)
    beat = {"showing": "Ab3xK9", "revision": 3, "digest": "abc", "version": "0.1", "uptime_s": 9}
    assert screen_service.record_heartbeat(screen, beat)
    assert screen.state == beat
    assert screen_service.is_online(screen)
    # A newer connection replaced sid-1: the old one's disconnect changes nothing.
    screen_service.record_connect(screen, "sid-2")
    screen_service.record_disconnect(screen, "sid-1")
    assert screen_service.is_online(screen)
    screen_service.record_disconnect(screen, "sid-2")
    assert not screen_service.is_online(screen) and screen.connected_sid is None


@pytest.mark.parametrize(
    "beat",
    [None, [], "x", {"showing": 5}, {"revision": "7"}, {"version": "v" * 100},
     {"uptime_s": True}, {"showing": "x" * 40}],
)
def test_malformed_heartbeats_are_ignored(world: World, beat: object) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    assert not screen_service.record_heartbeat(screen, beat)
    assert screen.state == {}


def test_heartbeats_carry_the_store_error_and_the_clock_offset(world: World) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    beat = {"showing": None, "revision": 3, "digest": "abc", "version": "0.1", "uptime_s": 9,
            "store_error": "No space left on device", "clock_offset_s": 7200}
    assert screen_service.record_heartbeat(screen, beat)
    assert screen.state == beat
    # Bounded, not refused: the heartbeat still says the screen is alive.
    long_error = {**beat, "store_error": "x" * 5000, "clock_offset_s": -(10**12)}
    assert screen_service.record_heartbeat(screen, long_error)
    assert len(screen.state["store_error"]) == protocol.MAX_STORE_ERROR
    assert screen.state["clock_offset_s"] == -protocol.MAX_CLOCK_OFFSET_S
    # A box that booted in 1970 (no real-time clock) is reported as it is.
    booted_1970 = {**beat, "clock_offset_s": 1_796_000_000}
    assert screen_service.record_heartbeat(screen, booted_1970)
    assert screen.state["clock_offset_s"] == 1_796_000_000
    # Healthy again: null, and an empty text means the same.
    assert screen_service.record_heartbeat(screen, {**beat, "store_error": ""})
    assert screen.state["store_error"] is None


@pytest.mark.parametrize("junk", [{"store_error": 5}, {"store_error": ["x"]},
                                  {"clock_offset_s": "7200"}, {"clock_offset_s": 1.5},
                                  {"clock_offset_s": True}])
def test_heartbeats_with_bad_fault_fields_are_ignored(world: World, junk: dict) -> None:
    screen, _token = screen_service.provision(None, world.village, "屏")
    beat = {"showing": None, "revision": 3, "digest": "abc", "version": "0.1", "uptime_s": 9}
    assert not screen_service.record_heartbeat(screen, {**beat, **junk})
    assert screen.state == {}


# --- pairing -------------------------------------------------------------------------------


def test_pairing_is_idempotent_per_secret_and_claimed_by_an_editor(world: World) -> None:
    req = screen_service.start_pairing(SECRET, 1280, 720)
    assert len(req.code) == 6 and req.code.isdigit()
    assert screen_service.start_pairing(SECRET).code == req.code
    other = screen_service.start_pairing("another-secret-0123456789")
    assert other.code != req.code
    assert screen_service.pairing_status(SECRET) == {
        "code": req.code,
        "expires_at": req.expires_at.isoformat(timespec="seconds") + "Z",
    }
    with pytest.raises(PermissionDenied):
        screen_service.claim_pairing(world.village_editor, req.code, world.other_village, "屏")
    with pytest.raises(ValidationError):
        screen_service.claim_pairing(world.village_editor, "000000", world.village, "屏")
    screen = screen_service.claim_pairing(world.village_editor, req.code, world.village, "新屏")
    assert (screen.width, screen.height) == (1280, 720)
    status = screen_service.pairing_status(SECRET)
    assert screen_service.authenticate(status["token"]) is screen
    # The first connect with the token proves delivery: the plain copy is forgotten.
    screen_service.record_connect(screen, "sid")
    assert db.session.scalar(db.select(PairingRequest.token).where(
        PairingRequest.screen_id == screen.id)) is None
    assert "code" in screen_service.pairing_status(SECRET)  # asking again starts over
    assert audit_actions(screen.id) == ["pair"]


def test_an_expired_pairing_code_gets_a_new_one(world: World) -> None:
    req = screen_service.start_pairing(SECRET)
    old_code = req.code
    req.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(ValidationError):
        screen_service.claim_pairing(world.village_editor, old_code, world.village, "屏")
    fresh = screen_service.start_pairing(SECRET)
    assert fresh.expires_at > utcnow()


def test_pairing_secret_must_be_plausible(app: Flask) -> None:
    with pytest.raises(ValidationError):
        screen_service.start_pairing("short")


# --- revisions -----------------------------------------------------------------------------


def test_revisions_bump_the_affected_regions_and_strictly_increase(world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    far, _t = screen_service.provision(None, world.other_village, "远")
    assert revisions.screen_revision(screen) == 0
    seen: list[int] = []
    n = publish(world, ["V11"])
    seen.append(revisions.screen_revision(screen))
    assert revisions.screen_revision(far) == 0
    publish(world, ["T1"])
    seen.append(revisions.screen_revision(screen))
    county = publish(world, ["C0"])
    seen.append(revisions.screen_revision(screen))
    assert revisions.screen_revision(far) == seen[-1]
    notices.withdraw(world.county_editor, n, "错误")
    seen.append(revisions.screen_revision(screen))
    assert revisions.screen_revision(far) == seen[-2]
    notices.withdraw(world.county_editor, county, "错误")
    seen.append(revisions.screen_revision(far))
    assert seen == sorted(set(seen)) and seen[0] >= 1
    assert revisions.current() == seen[-1]
    rows = {r.region_id: r.revision for r in db.session.scalars(db.select(RegionRevision))}
    assert rows[world.county.id] == seen[-1] and world.other_town.id not in rows


def test_republication_bumps_old_and_new_targets(world: World) -> None:
    n = publish(world, ["V11"])
    before = revisions.current()
    notices.update(
        world.county_editor,
        n,
        NoticeInput(title="改", body="改后", category="village", targets=["V21"]),
    )
    notices.submit(world.county_editor, n)
    notices.approve(world.county_reviewer, n)
    received: list[dict[str, object]] = []

    def listener(sender: object, **kw: object) -> None:
        received.append(kw)

    from server import signals

    signals.notice_changed.connect(listener)
    try:
        notices.publish(world.county_editor, n)
    finally:
        signals.notice_changed.disconnect(listener)
    (event,) = received
    assert event["notice_ids"] == [n.id]
    assert event["region_ids"] == sorted([world.village.id, world.other_village.id])
    assert event["revision"] == before + 1 == revisions.current()


def test_schedule_and_expiry_bump_revisions(world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    start = utcnow() + timedelta(hours=1)
    n = notices.create(
        world.county_editor,
        NoticeInput(title="定时", body="正文", category="village", targets=["T1"],
                    publish_at=start, expire_at=start + timedelta(days=1)),
    )
    notices.submit(world.county_editor, n)
    notices.approve(world.county_reviewer, n)  # releases it for its time
    assert revisions.screen_revision(screen) == 0  # scheduled: nothing on screens yet
    notices.run_schedule(now=start + timedelta(seconds=1))
    first = revisions.screen_revision(screen)
    notices.run_schedule(now=start + timedelta(days=2))
    assert revisions.screen_revision(screen) > first > 0


# --- playlist ------------------------------------------------------------------------------


def test_snapshot_holds_the_live_notices_of_the_region_chain(world: World) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    mine = publish(world, ["V11"])
    town = publish(world, ["T1"])
    county = publish(world, ["C0"], pinned=True)
    publish(world, ["V12"])
    publish(world, ["T2"])
    gone = publish(world, ["V11"])
    notices.withdraw(world.county_editor, gone, "撤")
    snap = playlist.snapshot_for(screen)
    protocol.check_snapshot(snap)
    assert snap["revision"] == revisions.screen_revision(screen)
    codes = [n["code"] for n in snap["notices"]]
    assert set(codes) == {mine.code, town.code, county.code}
    assert codes[0] == county.code  # pinned first
    payload = next(n for n in snap["notices"] if n["code"] == mine.code)
    assert payload["url"] == f"http://cp.test/n/{mine.code}"
    assert payload["regions"] == ["清源县 · 柳河镇 · 前王庄村"]
    assert payload["targets"] == [world.village.id]
    assert payload["category"] == {"key": "village", "name": "村务公开", "color": "#1565c0"}
    assert payload["version"] == 1 and payload["published_at"].endswith("Z")
    assert payload["blocks"][1]["type"] == "table"


def test_snapshots_are_cached_per_region_and_revision(world: World) -> None:
    screens = [screen_service.provision(None, world.village, f"屏{i}")[0] for i in range(5)]
    publish(world, ["T1"])
    cache = playlist._cache()
    misses = cache.misses
    digests = {playlist.snapshot(s).digest for s in screens}
    assert len(digests) == 1 and cache.misses == misses + 1
    publish(world, ["V11"])
    assert len(playlist.snapshot(screens[0]).notices) == 2
    assert cache.misses == misses + 2


def test_an_expired_notice_leaves_the_cached_snapshot_before_the_scheduler_runs(
    world: World,
) -> None:
    screen, _t = screen_service.provision(None, world.village, "屏")
    publish(world, ["V11"], expire_at=utcnow() + timedelta(minutes=5))
    assert len(playlist.snapshot(screen).notices) == 1
    later = utcnow() + timedelta(minutes=6)
    assert playlist.snapshot(screen, now=later).notices == []


def test_to_blocks_covers_the_markup_editors_use() -> None:
    body = (
        "## 公示\n第一行**加粗**\n第二行\n\n- 甲\n- [链接](http://x.cn)乙\n  1. 子项\n\n"
        "1. 一\n2. 二\n\n| 项目 | 金额 | 备注 |\n| :-- | --: | :-: |\n| 修路 | 1,200 |\n"
    )
    blocks = to_blocks(body)
    assert [b["type"] for b in blocks] == ["heading", "paragraph", "list", "list", "table"]
    assert blocks[1]["runs"] == [
        {"text": "第一行", "bold": False},
        {"text": "加粗", "bold": True},
        {"text": "\n第二行", "bold": False},
    ]
    assert blocks[2]["ordered"] is False
    assert blocks[2]["items"][1] == [{"text": "链接乙\n1. 子项", "bold": False}]
    assert blocks[3]["ordered"] is True and len(blocks[3]["items"]) == 2
    table = blocks[4]
    assert table["align"] == ["left", "right", "center"]
    assert table["rows"] == [[[{"text": "修路", "bold": False}], [{"text": "1,200", "bold": False}],
                              []]]
    for block in blocks:
        protocol.check_block(block)
    assert to_blocks("<b>x</b>") == [{"type": "paragraph",
                                      "runs": [{"text": "<b>x</b>", "bold": False}]}]


# --- command line --------------------------------------------------------------------------


def test_cli_screen_add_list_revoke(app: Flask, world: World) -> None:
    from tests.test_cli import run

    code, out = run(app, "screen", "add", "--region", "V11", "--name", "村委会门口",
                    "--size", "1080x1920")
    assert code == 0, out
    token = next(line for line in out.splitlines() if line.startswith("token = ")).split('"')[1]
    assert 'server = "http://cp.test"' in out
    screen = screen_service.authenticate(token)
    code, out = run(app, "screen", "add", "--region", "V11", "--name", "文化广场",
                    "--server", "http://10.0.0.5:8080/")
    assert code == 0 and 'server = "http://10.0.0.5:8080"' in out
    app.config["PUBLIC_BASE_URL"] = "http://localhost:5000"  # not configured: no localhost
    code, out = run(app, "screen", "add", "--region", "V11", "--name", "便民服务中心")
    assert code == 0 and "localhost" not in out and "SERVER-ADDRESS" in out
    assert screen is not None and screen.orientation == "portrait"
    code, out = run(app, "screen", "list")
    assert code == 0 and screen.code in out and "offline" in out and "村委会门口" in out
    code, out = run(app, "screen", "revoke", screen.code)
    assert code == 0, out
    assert screen_service.authenticate(token) is None
    code, out = run(app, "screen", "list")
    assert "revoked" in out
    code, out = run(app, "screen", "add", "--region", "nope", "--name", "x")
    assert code != 0 and "Traceback" not in out
    code, out = run(app, "screen", "add", "--region", "V11", "--name", "x", "--size", "big")
    assert code != 0 and "WIDTHxHEIGHT" in out
    code, out = run(app, "screen", "revoke", "zzzzzz")
    assert code != 0 and "zzzzzz" in out


def test_concurrent_bumps_get_distinct_increasing_revisions(app: Flask, world: World) -> None:
    """Several writers at once (threads here, processes in production): each bump is its own
    value and the counter ends at the number of bumps."""
    import threading

    start = revisions.current()
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer() -> None:
        try:
            with app.app_context():
                for _ in range(10):
                    value = revisions.bump([world.village.id])
                    db.session.commit()
                    with lock:
                        got.append(value)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(got) == list(range(start + 1, start + 41))
    db.session.expire_all()
    assert revisions.current() == start + 40
    assert revisions.region_revision(world.village) == start + 40


def test_one_address_cannot_fill_the_pairing_codes(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of pairing secrets from one client: capped per address (pending and per
    minute), while another address — a real box elsewhere — still gets its code."""
    monkeypatch.setattr(screen_service, "PAIRING_PER_ADDRESS", 5)
    monkeypatch.setattr(screen_service, "PAIRING_PER_ADDRESS_MINUTE", 8)
    for i in range(5):
        screen_service.start_pairing(f"flood-secret-{i:04d}-abcdef", ip="198.51.100.7")
    with pytest.raises(screen_service.ValidationError):
        screen_service.start_pairing("flood-secret-9999-abcdef", ip="198.51.100.7")
    # The same box asking again keeps its code (no new request).
    assert screen_service.start_pairing("flood-secret-0001-abcdef", ip="198.51.100.7").code
    assert screen_service.start_pairing("a-real-box-secret-000001", ip="203.0.113.5").code
    # Per minute too: codes claimed (so no longer pending) still count for a minute.
    monkeypatch.setattr(screen_service, "PAIRING_PER_ADDRESS", 100)
    for i in range(5, 8):
        screen_service.start_pairing(f"flood-secret-{i:04d}-abcdef", ip="198.51.100.7")
    with pytest.raises(screen_service.ValidationError):
        screen_service.start_pairing("flood-secret-8888-abcdef", ip="198.51.100.7")
