"""The player's settings: command line over environment over the TOML file over defaults.

A box is usually set up with /etc/cunping/player.toml (server, token from `cunping screen add`,
display); the command line and CUNPING_PLAYER_* variables override it for a test or a demo.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from player import signing

DISPLAYS = ("pygame", "headless")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
HEADLESS_SIZE = (1920, 1080)
MIN_SIDE, MAX_SIDE = 160, 7680

# setting name -> environment variable
ENV = {
    "config": "CUNPING_PLAYER_CONFIG",
    "server": "CUNPING_PLAYER_SERVER",
    "token": "CUNPING_PLAYER_TOKEN",
    "data_dir": "CUNPING_PLAYER_DATA_DIR",
    "display": "CUNPING_PLAYER_DISPLAY",
    "frames_dir": "CUNPING_PLAYER_FRAMES_DIR",
    "size": "CUNPING_PLAYER_SIZE",
    "fullscreen": "CUNPING_PLAYER_FULLSCREEN",
    "font": "CUNPING_PLAYER_FONT",
    "log_level": "CUNPING_PLAYER_LOG_LEVEL",
    "mute": "CUNPING_PLAYER_MUTE",
    "alert_keys": "CUNPING_PLAYER_ALERT_KEYS",
}
FILE_KEYS = set(ENV) - {"config"}


class ConfigError(ValueError):
    """A setting that is missing or wrong; the message says which and where to fix it."""


@dataclass(frozen=True)
class Settings:
    server: str
    token: str | None
    data_dir: Path
    display: str
    frames_dir: Path
    size: tuple[int, int] | None  # None: the display's own size (pygame)
    fullscreen: bool
    font: str | None
    log_level: str
    config_file: Path | None = None
    mute: bool = False  # no alert tone and no voice (the headless display never has them)
    # The county's alert public keys (base64; two during a rotation): only alert sets signed
    # by one of them are shown. Empty: the keys pinned at pairing, if any (player/signing.py).
    alert_keys: tuple[str, ...] = ()


def default_data_dir() -> Path:
    """/var/lib/cunping-player for a system service (root, or the folder already made for
    the service user), else the user's XDG data folder."""
    system = Path("/var/lib/cunping-player")
    if os.geteuid() == 0 or (system.is_dir() and os.access(system, os.W_OK)):
        return system
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cunping-player"


def parse_size(value: Any) -> tuple[int, int]:
    text = str(value).strip().lower().replace("×", "x")
    parts = text.split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"size must look like 1920x1080, not {value!r}")
    w, h = (int(p) for p in parts)
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise ConfigError(f"size {w}x{h} is out of range ({MIN_SIDE} to {MAX_SIDE} pixels a side)")
    return w, h


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def check_server(value: Any) -> str:
    url = str(value).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"server must be an http:// or https:// URL, not {value!r}")
    return url


def parse_alert_keys(value: Any) -> tuple[str, ...]:
    """A list (TOML) or a comma-separated string (environment) of base64 public keys."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(k, str) for k in items):
        raise ConfigError("alert_keys must be a list of base64 public keys")
    keys = tuple(k.strip() for k in items if k.strip())
    for key in keys:
        try:
            signing.parse_key(key)
        except signing.BadKey as exc:
            raise ConfigError(str(exc)) from None
    return keys


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Allow the settings at the top level or under [player].
    if isinstance(data.get("player"), dict):
        data = {**{k: v for k, v in data.items() if k != "player"}, **data["player"]}
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(FILE_KEYS))}")
    return data


def load(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Merge the sources (cli values that are None count as not given) and validate."""
    env = os.environ if environ is None else environ
    config_path = cli.get("config") or env.get(ENV["config"])
    file_values = read_file(Path(config_path)) if config_path else {}

    def pick(name: str) -> Any:
        if cli.get(name) is not None:
            return cli[name]
        if env.get(ENV[name]):
            return env[ENV[name]]
        return file_values.get(name)

    server = pick("server")
    if not server:
        raise ConfigError("no server URL: pass --server, set CUNPING_PLAYER_SERVER "
                          "or put server = \"https://...\" in the config file")
    display = str(pick("display") or "pygame").lower()
    if display not in DISPLAYS:
        raise ConfigError(f"display must be one of {', '.join(DISPLAYS)}, not {display!r}")
    size_value = pick("size")
    size = parse_size(size_value) if size_value else None
    if size is None and display == "headless":
        size = HEADLESS_SIZE
    data_dir = Path(str(pick("data_dir"))).expanduser() if pick("data_dir") else default_data_dir()
    frames = pick("frames_dir")
    frames_dir = Path(str(frames)).expanduser() if frames else data_dir / "frames"
    fullscreen_value = pick("fullscreen")
    fullscreen = True if fullscreen_value is None else parse_bool(fullscreen_value, "fullscreen")
    log_level = str(pick("log_level") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    token = pick("token")
    token = str(token).strip() if token else None
    mute_value = pick("mute")
    mute = False if mute_value is None else parse_bool(mute_value, "mute")
    alert_keys = parse_alert_keys(pick("alert_keys"))
    font = pick("font")
    if font and not Path(str(font)).expanduser().is_file():
        raise ConfigError(f"font file {font} does not exist")
    return Settings(
        server=check_server(server),
        token=token or None,
        data_dir=data_dir,
        display=display,
        frames_dir=frames_dir,
        size=size,
        fullscreen=fullscreen,
        font=str(Path(str(font)).expanduser()) if font else None,
        log_level=log_level,
        config_file=Path(config_path) if config_path else None,
        mute=mute,
        alert_keys=alert_keys,
    )
