"""Where frames go: a small interface with a pygame (SDL2) and a headless backend.

Only the main thread calls a Display.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from player.store import atomic_write

log = logging.getLogger(__name__)

KEEP_FRAMES = 200
WINDOW_SIZE = (1280, 720)  # a window's default when the desktop is larger


class DisplayError(RuntimeError):
    """No way to show frames (no X, no KMSDRM, no framebuffer...)."""


class Display(Protocol):
    size: tuple[int, int]
    last_image: Image.Image | None  # the frame on screen now (for screenshots)

    def show(self, image: Image.Image, info: dict[str, Any]) -> None:
        """Put `image` on screen. info: {"showing": code|"standby"|"pairing"|"message"|
        "alert:<code>", "page": int, "revision": int, "version": int|None}, and for an alert
        also "alert": code, "level": 1-4."""

    def pump(self) -> bool:
        """Handle window events; False when the user closed the window or pressed Esc."""

    def close(self) -> None: ...


class HeadlessDisplay:
    """No screen: each frame shown becomes frames/frame-<seq>.png (and current.png), with a
    line in frames.jsonl. For tests and for checking a box remotely. Keeps the last 200."""

    def __init__(self, frames_dir: Path, size: tuple[int, int], keep: int = KEEP_FRAMES) -> None:
        self.dir = Path(frames_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.keep = keep
        self.log_path = self.dir / "frames.jsonl"
        self.seq = self._last_seq()
        self._lines = self._count_lines()
        self.last_image: Image.Image | None = None

    def _last_seq(self) -> int:
        last = 0
        for path in self.dir.glob("frame-*.png"):
            match = re.fullmatch(r"frame-(\d+)\.png", path.name)
            if match:
                last = max(last, int(match.group(1)))
        return last

    def _count_lines(self) -> int:
        try:
            with self.log_path.open("rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def show(self, image: Image.Image, info: dict[str, Any]) -> None:
        self.seq += 1
        name = f"frame-{self.seq:06d}.png"
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "PNG", compress_level=1)
        self.last_image = image
        data = buffer.getvalue()
        # Atomic, not durable: a reader never sees half a PNG; a power cut may lose a frame.
        atomic_write(self.dir / name, data, durable=False)
        atomic_write(self.dir / "current.png", data, durable=False)
        line = {"seq": self.seq, "file": name,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "showing": info.get("showing"), "page": info.get("page", 0),
                "revision": info.get("revision"), "version": info.get("version")}
        if info.get("alert") is not None:
            line["alert"] = info["alert"]
            line["level"] = info.get("level")
        if info.get("more"):  # the last page of a turn cut short by the time budget
            line["more"] = info["more"]
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._lines += 1
        self._prune()

    def _prune(self) -> None:
        old = self.dir / f"frame-{self.seq - self.keep:06d}.png"
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
        if self._lines > 2 * self.keep:
            lines = self.log_path.read_text("utf-8").splitlines(keepends=True)[-self.keep:]
            atomic_write(self.log_path, "".join(lines).encode(), durable=False)
            self._lines = len(lines)

    def pump(self) -> bool:
        return True

    def close(self) -> None:
        pass


class PygameDisplay:
    """SDL2 through pygame: a window, or full screen; without X or Wayland it tries KMSDRM and
    then the Linux framebuffer."""

    def __init__(self, size: tuple[int, int] | None, *, fullscreen: bool,
                 title: str = "村屏 Cunping") -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise DisplayError("the pygame display needs pygame: pip install "
                               "'cunping[player-pygame]' (or use --display headless)") from None
        self.pg = pygame
        self._init_video()
        info = pygame.display.Info()
        desktop = (info.current_w, info.current_h)
        if size is None:
            if fullscreen or desktop[0] <= 0:
                size = desktop if desktop[0] > 0 else WINDOW_SIZE
            else:
                size = WINDOW_SIZE if desktop[0] > WINDOW_SIZE[0] else desktop
        flags = pygame.FULLSCREEN if fullscreen else 0
        try:
            self.surface = pygame.display.set_mode(size, flags)
        except pygame.error as exc:
            raise DisplayError(f"cannot open a {size[0]}x{size[1]} display: {exc}") from exc
        self.size = self.surface.get_size()
        pygame.display.set_caption(title)
        if fullscreen:
            pygame.mouse.set_visible(False)
        log.info("pygame display: %s, %dx%d%s", pygame.display.get_driver(), *self.size,
                 " full screen" if fullscreen else "")
        self._last: Any = None
        self.last_image: Image.Image | None = None

    def _init_video(self) -> None:
        pygame = self.pg
        has_desktop = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if os.environ.get("SDL_VIDEODRIVER") or has_desktop:
            drivers = [os.environ.get("SDL_VIDEODRIVER")]
        else:
            drivers = ["kmsdrm", "fbdev"]
        errors = []
        for driver in drivers:
            if driver:
                os.environ["SDL_VIDEODRIVER"] = driver
            try:
                pygame.display.init()
                return
            except pygame.error as exc:
                errors.append(f"{driver or 'default'}: {exc}")
                pygame.display.quit()
        raise DisplayError("no video output (" + "; ".join(errors) + ")")

    def show(self, image: Image.Image, info: dict[str, Any]) -> None:
        pygame = self.pg
        if image.size != self.size:
            image = image.resize(self.size, Image.Resampling.LANCZOS)
        surface = pygame.image.frombytes(image.convert("RGB").tobytes(), image.size, "RGB")
        self._last = surface
        self.last_image = image
        self.surface.blit(surface, (0, 0))
        pygame.display.flip()

    def pump(self) -> bool:
        pygame = self.pg
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                return False
            if event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q):
                return False
            if event.type in (pygame.VIDEOEXPOSE, pygame.WINDOWEXPOSED) \
                    and self._last is not None:
                self.surface.blit(self._last, (0, 0))
                pygame.display.flip()
        return True

    def close(self) -> None:
        self.pg.display.quit()
        self.pg.quit()
