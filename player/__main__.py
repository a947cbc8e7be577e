"""`cunping player`: the kiosk player for set-top boxes and village screens.

Settings come from the command line, CUNPING_PLAYER_* variables and an optional TOML file
(--config /etc/cunping/player.toml), in that order of precedence; see player/config.py.
Exits non-zero on a fatal error so systemd restarts it.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from importlib import metadata
from types import FrameType

from player import config


def player_version() -> str:
    try:
        return metadata.version("cunping")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cunping player",
        description="村屏 Cunping player: shows the notices for this screen, live from the server.")
    p.add_argument("--config", help="TOML settings file, e.g. /etc/cunping/player.toml")
    p.add_argument("--server", help="the server's URL, e.g. https://cunping.example.cn")
    p.add_argument("--token", help="this screen's token (from `cunping screen add`); "
                                   "without one the player shows a pairing code")
    p.add_argument("--data-dir", dest="data_dir",
                   help="where the token, playlist and images are kept")
    p.add_argument("--display", choices=config.DISPLAYS,
                   help="pygame (a window or full screen) or headless (PNG frames)")
    p.add_argument("--frames-dir", dest="frames_dir",
                   help="headless: folder for the frames (default: <data-dir>/frames)")
    p.add_argument("--size", help="WIDTHxHEIGHT, e.g. 1920x1080 (default: the display's size; "
                                  "1920x1080 headless)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fullscreen", dest="fullscreen", action="store_const", const=True,
                      help="full screen (the default)")
    mode.add_argument("--windowed", dest="fullscreen", action="store_const", const=False,
                      help="in a window")
    p.add_argument("--font", help="a font file that can draw Chinese (default: found in the "
                                  "system, Noto Sans CJK or WenQuanYi)")
    p.add_argument("--mute", dest="mute", action="store_const", const=True,
                   help="no alert tone and no spoken alerts (pygame display; headless is "
                        "always silent)")
    p.add_argument("--log-level", dest="log_level", type=str.upper,
                   choices=config.LOG_LEVELS)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = config.load(vars(args))
    except config.ConfigError as exc:
        sys.exit(f"cunping player: {exc}")
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("socketio", "engineio", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    sys.exit(run(settings))


def run(settings: config.Settings) -> int:
    from player.app import PlayerApp
    from player.client import PlayerClient
    from player.display import DisplayError, HeadlessDisplay, PygameDisplay
    from player.fonts import FontError, find_fonts
    from player.render import Renderer
    from player.sound import make_audio
    from player.store import Store

    log = logging.getLogger("player")
    try:
        fonts = find_fonts(settings.font)
    except FontError as exc:
        print(f"cunping player: {exc}", file=sys.stderr)
        return 2
    try:
        store = Store(settings.data_dir)
    except OSError as exc:
        print(f"cunping player: cannot use data folder {settings.data_dir}: {exc}",
              file=sys.stderr)
        return 2
    try:
        if settings.display == "pygame":
            display = PygameDisplay(settings.size, fullscreen=settings.fullscreen)
        else:
            assert settings.size is not None
            display = HeadlessDisplay(settings.frames_dir, settings.size)
    except (DisplayError, OSError) as exc:
        print(f"cunping player: {exc}", file=sys.stderr)
        return 2
    work: queue.Queue = queue.Queue()
    link = PlayerClient(settings.server, store, work, version=player_version(),
                        size=display.size, config_token=settings.token,
                        alert_keys=settings.alert_keys)
    audio = make_audio(enabled=settings.display == "pygame" and not settings.mute)
    app = PlayerApp(display, Renderer(fonts, display.size), link, work,
                    server=settings.server, store=store, audio=audio)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping (signal %d)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("cunping player %s: server %s, %s display %dx%d, data in %s", player_version(),
             settings.server, settings.display, *display.size, settings.data_dir)
    try:
        return app.run(stop)
    except Exception:
        log.exception("fatal error; exiting so the service manager restarts the player")
        return 1


if __name__ == "__main__":
    main()
