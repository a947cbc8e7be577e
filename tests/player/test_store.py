"""The player's disk store: atomic writes, corrupt files ignored, token private."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

from player import store as store_module
from player.store import Store, atomic_write
from tests.player.conftest import make_notice


def test_round_trip(tmp_path: Path) -> None:
    s = Store(tmp_path / "data")
    assert s.token() is None
    assert s.load_notices() is None
    assert s.state() == {"revision": -1, "screen": None, "county_name": None}
    notices = [make_notice("A1"), make_notice("B2", version=3)]
    s.save_state(revision=0, screen={"code": "S1", "region_chain": [1, 2, 3]},
                 county_name="清源县")
    s.save_notices(notices, 7)
    s.set_token("tok-123456789")

    again = Store(tmp_path / "data")
    assert again.token() == "tok-123456789"
    assert again.load_notices() == notices
    assert again.state() == {"revision": 7, "screen": {"code": "S1", "region_chain": [1, 2, 3]},
                             "county_name": "清源县"}
    # Chinese stays readable in the file
    assert "关于村集体收入的公示" in (tmp_path / "data" / "notices.json").read_text("utf-8")


def test_token_file_is_private(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.set_token("secret-token-value")
    mode = stat.S_IMODE(os.stat(tmp_path / "token").st_mode)
    assert mode == 0o600
    s.clear_token()
    assert s.token() is None


def test_pairing_secret_is_made_once(tmp_path: Path) -> None:
    s = Store(tmp_path)
    secret = s.pairing_secret()
    assert len(secret) >= 16
    assert Store(tmp_path).pairing_secret() == secret
    assert stat.S_IMODE(os.stat(tmp_path / "pairing-secret").st_mode) == 0o600


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b"",
                                     b'{"revision": "x", "screen": 5}', b"[1, 2]"])
def test_corrupt_state_is_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "state.json").write_bytes(content)
    assert Store(tmp_path).state() == {"revision": -1, "screen": None, "county_name": None}


@pytest.mark.parametrize("content", [
    b"{truncated",
    b'{"a": 1}',
    json.dumps([{"code": "X"}]).encode(),  # not a valid notice
    json.dumps([make_notice("A")] * 2)[:-40].encode(),  # cut off by a power failure
])
def test_corrupt_notices_are_ignored(tmp_path: Path, content: bytes,
                                     caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "notices.json").write_bytes(content)
    assert Store(tmp_path).load_notices() is None
    assert "ignoring" in caplog.text


def test_atomic_write_keeps_old_content_when_writing_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notices.json"
    atomic_write(path, b"[]")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write(path, b"[" + b"x" * 1000)
    assert path.read_bytes() == b"[]"
    assert [p.name for p in tmp_path.iterdir()] == ["notices.json"]  # no temp file left


def test_atomic_write_never_shows_a_partial_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """While the new content is being written, the old file is still there, whole."""
    path = tmp_path / "state.json"
    atomic_write(path, b"old")
    seen = []
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        seen.append(path.read_bytes())
        real_fsync(fd)

    monkeypatch.setattr(store_module.os, "fsync", spying_fsync)
    atomic_write(path, b"new content")
    assert seen[0] == b"old"  # the temp file is synced before it replaces the old one
    assert path.read_bytes() == b"new content"


def test_images_cached_by_url(tmp_path: Path) -> None:
    s = Store(tmp_path)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, "PNG")
    url = "http://cunping.test/media/a.png"
    image = s.save_image(url, buffer.getvalue())
    assert image.size == (40, 30)
    assert s.load_image(url).size == (40, 30)  # type: ignore[union-attr]
    assert s.load_image("http://cunping.test/media/other.png") is None
    with pytest.raises(OSError):
        s.save_image("http://cunping.test/media/bad.png", b"not an image")
    s.image_path(url).write_bytes(b"garbage now")
    assert s.load_image(url) is None  # broken cache entry ignored
    s.prune_images(set())
    assert not any(s.images_dir.iterdir())
