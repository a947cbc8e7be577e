"""What the player keeps on local disk: token, pairing secret, screen, revision, notices, alerts,
images (and the proof-of-play queue, player.plays).

Every write is atomic (temp file in the same folder, fsync, rename, fsync the folder), so a
power cut leaves either the old or the new file. A corrupt or unreadable file is logged and
treated as missing: a box must come up showing something, never crash on its own data.

A write that fails (disk full, read-only or failing storage) still raises, but the store also
remembers it per file until a later write of that file works (`problem()`, reported in
heartbeats as "store_error"), and logs the change of state once, not every retry. What could
not be saved is kept in memory and shown by the caller; `Retrier` tries the write again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import random
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from player import protocol

log = logging.getLogger(__name__)

TOKEN_FILE = "token"
PAIRING_FILE = "pairing-secret"
# {"revision", "screen", "county_name", "clock_offset": server clock - ours, seconds}
STATE_FILE = "state.json"
NOTICES_FILE = "notices.json"  # [NoticePayload, ...] as last received from the server
ALERTS_FILE = "alerts.json"  # {"alerts": [AlertPayload, ...], "offset": server clock - ours,
# "server_time": the set's (a signed set older than it is a replay)}
ALERT_KEYS_FILE = "alert-keys.json"  # [base64 public key, ...] pinned at pairing
IMAGES_DIR = "images"
MAX_IMAGE_PIXELS = 40_000_000  # a 5 MB file can still decode to gigabytes
MAX_PROBLEM = protocol.MAX_STORE_ERROR  # characters of a write error kept for heartbeats
RETRY_BASE = 5.0  # a failed save is tried again after 5 s, 10 s, 20 s ... (jittered)
RETRY_MAX = 300.0


def describe_error(exc: OSError) -> str:
    """"No space left on device" rather than "[Errno 28] No space left on device: '/x/.y.tmp'":
    the admin shows it, and the temp file's name says nothing."""
    return (exc.strerror or str(exc) or type(exc).__name__)[:MAX_PROBLEM]


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
        self._problems: dict[str, str] = {}  # file name -> the error of its last write
        self._problems_lock = threading.Lock()

    # -- write failures -----------------------------------------------------------------------

    def problem(self) -> str | None:
        """The error of a write failing now ("No space left on device"), None when the last
        write of every file worked."""
        with self._problems_lock:
            return next(iter(self._problems.values()), None)

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Remembers whether writing `name` worked; logs only when that changes."""
        try:
            yield
        except OSError as exc:
            error = describe_error(exc)
            with self._problems_lock:
                changed = self._problems.get(name) != error
                self._problems[name] = error
            if changed:
                log.error("cannot save %s: %s; keeping it in memory and trying again",
                          self.dir / name, error)
            raise
        with self._problems_lock:
            was = self._problems.pop(name, None)
        if was is not None:
            log.warning("saved %s again (it had failed: %s)", self.dir / name, was)

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
        with self._writing(name):
            atomic_write(self.dir / name, data)

    # -- token and pairing --------------------------------------------------------------------

    def token(self) -> str | None:
        return self._read_text(TOKEN_FILE)

    def set_token(self, token: str) -> None:
        with self._writing(TOKEN_FILE):
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

    def alert_keys(self) -> list[str]:
        """The county's alert public keys pinned at pairing ([] when none)."""
        data = self._read_json(ALERT_KEYS_FILE)
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            return []
        return data

    def set_alert_keys(self, keys: list[str]) -> None:
        self._write_json(ALERT_KEYS_FILE, keys)

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

    def clock_offset(self) -> float | None:
        """The server's clock minus this box's, in seconds, as last measured (WELCOME or
        ALERTS); None when never measured (a new box, or state written by an older player)."""
        data = self._read_json(STATE_FILE)
        offset = data.get("clock_offset") if isinstance(data, dict) else None
        if isinstance(offset, int | float) and not isinstance(offset, bool):
            return float(offset)
        return None

    def save_state(self, *, revision: int, screen: dict[str, Any] | None,
                   county_name: str | None, clock_offset: float | None = None) -> None:
        """`clock_offset` None keeps the one on disk (a reboot without network still judges
        times by the server's clock as last known)."""
        if clock_offset is None:
            clock_offset = self.clock_offset()
        data: dict[str, Any] = {"revision": revision, "screen": screen,
                                "county_name": county_name}
        if clock_offset is not None:
            data["clock_offset"] = clock_offset
        self._write_json(STATE_FILE, data)

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
        """The notices and their revision, keeping the rest of the state as it is on disk."""
        state = self.state()
        self.save_all(notices, revision=revision, screen=state["screen"],
                      county_name=state["county_name"])

    def save_all(self, notices: list[dict[str, Any]] | None, *, revision: int,
                 screen: dict[str, Any] | None, county_name: str | None,
                 clock_offset: float | None = None) -> None:
        """Notices (unless None) first, then the state: a crash between them leaves an old
        revision, which only costs a snapshot, never a revision that claims content we do
        not have."""
        if notices is not None:
            self._write_json(NOTICES_FILE, notices)
        self.save_state(revision=revision, screen=screen, county_name=county_name,
                        clock_offset=clock_offset)

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

    def alerts_server_time(self) -> str | None:
        """The server_time of the alert set last saved, if it had one."""
        data = self._read_json(ALERTS_FILE)
        value = data.get("server_time") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def save_alerts(self, alerts: list[dict[str, Any]], offset: float = 0.0,
                    server_time: str | None = None) -> None:
        """The whole alert set, atomically and durably (an acknowledgement promises it)."""
        self._write_json(ALERTS_FILE, {"alerts": alerts, "offset": offset,
                                       "server_time": server_time})

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
        """Decode (raises on a broken image), then cache the bytes. An image that cannot be
        cached (disk full) is still returned, to be shown from memory; only a restart without
        network will miss it."""
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"image too large ({img.width}x{img.height})")
            img.load()
            image = img.copy()
        try:
            atomic_write(self.image_path(url), data, durable=False)
        except OSError as exc:
            log.warning("cannot cache image %s: %s; showing it from memory", url,
                        describe_error(exc))
        return image

    def prune_images(self, keep_urls: set[str]) -> None:
        keep = {self.image_path(u).name for u in keep_urls}
        if not self.images_dir.is_dir():
            return
        for path in self.images_dir.iterdir():
            if path.name not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()


class Retrier:
    """Calls `write` again, with jittered exponential backoff (RETRY_BASE up to RETRY_MAX), on
    its own thread, until it works. The caller made the first attempt and calls `failed()`
    after it; a later success of its own calls `succeeded()`. The thread runs only while a
    write is owed, so a healthy box has none. Logging is the store's (once per change)."""

    def __init__(self, write: Callable[[], None], *, name: str = "cunping-store-retry",
                 base: float | None = None, cap: float | None = None) -> None:
        self._write = write
        self._name = name
        self._base = RETRY_BASE if base is None else base
        self._cap = RETRY_MAX if cap is None else cap
        self._lock = threading.Lock()
        self._owed = False
        self._attempt = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def owed(self) -> bool:
        with self._lock:
            return self._owed

    def failed(self) -> None:
        """The write failed just now: try again later."""
        with self._lock:
            self._owed = True
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()

    def succeeded(self) -> None:
        """The write worked (whoever made it): nothing owed any more."""
        with self._lock:
            self._owed = False
            self._attempt = 0

    def stop(self) -> None:
        self._stop.set()

    def _delay(self) -> float:
        step = min(self._cap, self._base * 2 ** min(self._attempt, 20))
        return random.uniform(step / 2, step)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._owed or self._stop.is_set():
                    self._thread = None
                    return
                delay = self._delay()
                self._attempt += 1
            if self._stop.wait(delay):
                with self._lock:
                    self._thread = None
                return
            with self._lock:
                if not self._owed:  # saved meanwhile by a new event
                    continue
            try:
                self._write()
            except OSError:
                continue  # the store logged it if the error changed
            self.succeeded()
