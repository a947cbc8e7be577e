"""What the player keeps on local disk: token, pairing secret, screen, revision, notices, alerts,
images (and the proof-of-play queue, player.plays).

Every write is atomic (temp file in the same folder, fsync, rename, fsync the folder), so a
power cut leaves either the old or the new file. A corrupt or unreadable file is logged and
treated as missing: a box must come up showing something, never crash on its own data.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from player import protocol

log = logging.getLogger(__name__)

TOKEN_FILE = "token"
PAIRING_FILE = "pairing-secret"
STATE_FILE = "state.json"  # {"revision", "screen", "county_name"}
NOTICES_FILE = "notices.json"  # [NoticePayload, ...] as last received from the server
ALERTS_FILE = "alerts.json"  # {"alerts": [AlertPayload, ...], "offset": server clock - ours}
IMAGES_DIR = "images"
MAX_IMAGE_PIXELS = 40_000_000  # a 5 MB file can still decode to gigabytes


def fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a folder.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace `path` with `data` so readers see the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


class Store:
    """The player's data folder. Methods never raise on bad content; they log and go on."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.dir, 0o700)  # the token lives here
        self.images_dir = self.dir / IMAGES_DIR

    # -- small text files -------------------------------------------------------------------

    def _read_text(self, name: str) -> str | None:
        try:
            return (self.dir / name).read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.dir / name, exc)
            return None

    def _read_json(self, name: str) -> Any:
        path = self.dir / name
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.warning("ignoring corrupt %s: %s", path, exc)
            return None

    def _write_json(self, name: str, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        atomic_write(self.dir / name, data)

    # -- token and pairing --------------------------------------------------------------------

    def token(self) -> str | None:
        return self._read_text(TOKEN_FILE)

    def set_token(self, token: str) -> None:
        atomic_write(self.dir / TOKEN_FILE, token.encode() + b"\n", mode=0o600)

    def clear_token(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / TOKEN_FILE).unlink()
            fsync_dir(self.dir)

    def pairing_secret(self) -> str:
        """A random secret that identifies this box while it pairs; made once, kept."""
        secret = self._read_text(PAIRING_FILE)
        if not secret or len(secret) < 16:
            secret = secrets.token_urlsafe(24)
            atomic_write(self.dir / PAIRING_FILE, secret.encode() + b"\n", mode=0o600)
        return secret

    # -- screen, revision, notices -------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """{"revision": int, "screen": dict|None, "county_name": str|None}, defaults filled."""
        data = self._read_json(STATE_FILE)
        if not isinstance(data, dict):
            data = {}
        revision = data.get("revision")
        screen = data.get("screen")
        county = data.get("county_name")
        return {
            "revision": revision if isinstance(revision, int) else -1,
            "screen": screen if isinstance(screen, dict) else None,
            "county_name": county if isinstance(county, str) else None,
        }

    def save_state(self, *, revision: int, screen: dict[str, Any] | None,
                   county_name: str | None) -> None:
        self._write_json(STATE_FILE, {"revision": revision, "screen": screen,
                                      "county_name": county_name})

    def load_notices(self) -> list[dict[str, Any]] | None:
        """The cached notices; None when there are none, or the file is corrupt or holds any
        bad notice (the player then asks for a full snapshot)."""
        data = self._read_json(NOTICES_FILE)
        if data is None:
            return None
        try:
            protocol.check_snapshot({"revision": 0, "notices": data})
        except protocol.ProtocolError as exc:
            log.warning("ignoring cached notices in %s: %s", self.dir / NOTICES_FILE, exc)
            return None
        return list(data)

    def save_notices(self, notices: list[dict[str, Any]], revision: int) -> None:
        """Notices first, then the revision: a crash between them leaves an old revision, which
        only costs a snapshot, never a revision that claims content we do not have."""
        self._write_json(NOTICES_FILE, notices)
        state = self.state()
        self.save_state(revision=revision, screen=state["screen"],
                        county_name=state["county_name"])

    # -- alerts -------------------------------------------------------------------------------

    def load_alerts(self) -> tuple[list[dict[str, Any]], float]:
        """The alert set last received and the server's clock offset (seconds, server minus
        this box); ([], 0.0) when there is none or the file is corrupt or holds a bad alert."""
        data = self._read_json(ALERTS_FILE)
        if not isinstance(data, dict):
            return [], 0.0
        try:
            protocol.check_alerts(data)
        except protocol.ProtocolError as exc:
            log.warning("ignoring cached alerts in %s: %s", self.dir / ALERTS_FILE, exc)
            return [], 0.0
        offset = data.get("offset")
        if not isinstance(offset, int | float) or isinstance(offset, bool):
            offset = 0.0
        return list(data["alerts"]), float(offset)

    def save_alerts(self, alerts: list[dict[str, Any]], offset: float = 0.0) -> None:
        """The whole alert set, atomically and durably (an acknowledgement promises it)."""
        self._write_json(ALERTS_FILE, {"alerts": alerts, "offset": offset})

    # -- images -------------------------------------------------------------------------------

    def image_path(self, url: str) -> Path:
        return self.images_dir / hashlib.sha256(url.encode()).hexdigest()

    def load_image(self, url: str) -> Image.Image | None:
        path = self.image_path(url)
        if not path.exists():
            return None
        try:
            with Image.open(path) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise ValueError("image too large")
                img.load()
                return img.copy()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            log.warning("ignoring broken cached image for %s: %s", url, exc)
            return None

    def save_image(self, url: str, data: bytes) -> Image.Image:
        """Decode (raises on a broken image), then cache the bytes."""
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"image too large ({img.width}x{img.height})")
            img.load()
            image = img.copy()
        atomic_write(self.image_path(url), data, durable=False)
        return image

    def prune_images(self, keep_urls: set[str]) -> None:
        keep = {self.image_path(u).name for u in keep_urls}
        if not self.images_dir.is_dir():
            return
        for path in self.images_dir.iterdir():
            if path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()
