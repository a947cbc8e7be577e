"""Sound while an alert is on screen: a repeating tone, and the alert read aloud.

- The tone is a hi-lo beep pattern generated here (no asset files) and looped by pygame's
  mixer, where the pygame display runs and a sound device works.
- Where `espeak-ng` is on PATH, the alert's title, text and instruction are spoken (voice zh)
  by a child process, never waited for by the main loop, again every SPEAK_REPEAT_SECONDS
  while the alert is in force, and killed when it ends. The tone pauses while a voice speaks.

Both are optional; the headless display and `--mute` have neither. `AlertAudio` is the
controller the main loop calls on every step; its tone and voice are injected, so tests use
fakes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any, Protocol

from player import protocol

log = logging.getLogger(__name__)

SPEAK_REPEAT_SECONDS = 180.0
MAX_SPOKEN_BYTES = 30_000


class Tone(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Process(Protocol):
    """What AlertAudio needs of a running voice (subprocess.Popen)."""

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def beep_pattern(rate: int = 22050, *, channels: int = 1, period: float = 6.0,
                 volume: float = 0.5) -> bytes:
    """Signed 16-bit little-endian PCM: three hi-lo beep pairs (960/770 Hz, 0.3 s each),
    then silence to `period` seconds, so a loop repeats it every `period` seconds."""
    period = max(period, 2.5)  # the beeps take 2.25 s
    samples = array("h", bytes(2 * int(rate * period)))
    amp = 32767 * volume
    ramp = int(rate * 0.01)  # 10 ms fades: no clicks
    pos = 0
    for _ in range(3):
        for freq in (960.0, 770.0):
            n = int(rate * 0.3)
            for i in range(n):
                fade = min(1.0, i / ramp, (n - 1 - i) / ramp)
                samples[pos + i] = int(amp * fade * math.sin(2 * math.pi * freq * i / rate))
            pos += n
        pos += int(rate * 0.15)
    if sys.byteorder != "little":
        samples.byteswap()
    if channels == 1:
        return samples.tobytes()
    wide = array("h", bytes(2 * len(samples) * channels))
    for c in range(channels):
        wide[c::channels] = samples
    return wide.tobytes()


class PygameTone:
    """The beep pattern looped through pygame's mixer."""

    def __init__(self, pygame: Any) -> None:
        self.pg = pygame
        if not pygame.mixer.get_init():
            pygame.mixer.init(frequency=22050, size=-16, channels=1)
        got = pygame.mixer.get_init()
        if not got or abs(got[1]) != 16:
            raise RuntimeError(f"unexpected mixer format {got}")
        rate, _size, channels = got
        self.sound = pygame.mixer.Sound(buffer=beep_pattern(rate, channels=channels))
        self.playing = False

    @classmethod
    def create(cls) -> PygameTone | None:
        """A tone, or None (logged) when there is no pygame or no working sound device."""
        try:
            import pygame

            return cls(pygame)
        except Exception as exc:  # no device, no driver, no pygame: silent, not broken
            log.info("no alert tone: %s", exc)
            return None

    def start(self) -> None:
        if not self.playing:
            self.sound.play(loops=-1)
            self.playing = True

    def stop(self) -> None:
        if self.playing:
            self.sound.stop()
            self.playing = False


def espeak(command: str) -> Callable[[str], Process]:
    """A voice: `command` (espeak-ng) reading the text from its stdin, in Mandarin."""

    def say(text: str) -> Process:
        proc = subprocess.Popen([command, "-v", "zh", "-s", "150", "--stdin"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        try:  # a few kB: fits in the pipe, never blocks
            proc.stdin.write(text.encode()[:MAX_SPOKEN_BYTES])
            proc.stdin.close()
        except OSError:
            pass
        return proc

    return say


def spoken_text(alert: dict[str, Any]) -> str:
    level = alert.get("level")
    name = protocol.LEVEL_NAMES.get(level, "") if isinstance(level, int) else ""
    heading = f"{alert.get('event', '')}{name}预警"
    parts = [heading, alert.get("title"), alert.get("text"), alert.get("instruction")]
    return "。\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


class AlertAudio:
    """Tone and voice for the alert on screen; `update` is called on every step."""

    def __init__(self, tone: Tone | None = None, say: Callable[[str], Process] | None = None,
                 *, repeat: float = SPEAK_REPEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tone = tone
        self.say = say
        self.repeat = repeat
        self.clock = clock
        self.voice: Process | None = None
        self.voice_key: str | None = None
        self.spoken: dict[str, float] = {}  # alert key -> when it was last spoken
        self.tone_on = False
        self._dying: list[Process] = []

    @property
    def enabled(self) -> bool:
        return self.tone is not None or self.say is not None

    def update(self, shown: dict[str, Any] | None, active: set[str] | frozenset[str]) -> None:
        """`shown`: the alert on screen (None: no alert); `active`: the keys of every alert in
        force."""
        self._reap()
        if shown is None:
            self._set_tone(False)
            self._silence()
            self.spoken.clear()
            return
        self.spoken = {k: t for k, t in self.spoken.items() if k in active}
        if self.voice is not None and self.voice.poll() is not None:
            self.voice = self.voice_key = None
        if self.voice is not None and self.voice_key not in active:
            self._silence()  # cancelled, expired or updated while being read
        if self.voice is None and self.say is not None:
            key = protocol.alert_key(shown)
            last = self.spoken.get(key)
            if last is None or self.clock() - last >= self.repeat:
                try:
                    self.voice = self.say(spoken_text(shown))
                    self.voice_key = key
                except OSError as exc:
                    log.warning("cannot speak the alert: %s", exc)
                self.spoken[key] = self.clock()
        self._set_tone(self.voice is None)

    def _set_tone(self, on: bool) -> None:
        if self.tone is None or on == self.tone_on:
            return
        try:
            self.tone.start() if on else self.tone.stop()
        except Exception as exc:  # a sound device that went away: carry on silently
            log.warning("alert tone: %s", exc)
        self.tone_on = on

    def _silence(self) -> None:
        if self.voice is not None:
            with contextlib.suppress(OSError):
                self.voice.terminate()
            self._dying.append(self.voice)
            self.voice = self.voice_key = None

    def _reap(self) -> None:
        self._dying = [p for p in self._dying if p.poll() is None]

    def close(self) -> None:
        self._set_tone(False)
        self._silence()
        for proc in self._dying:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=1)
        self._dying = []


def make_audio(*, enabled: bool) -> AlertAudio:
    """The audio of a box: tone and voice where available, or a silent controller."""
    if not enabled:
        return AlertAudio()
    command = shutil.which("espeak-ng")
    if command is None:
        log.info("espeak-ng not found: alerts are not read aloud")
    return AlertAudio(PygameTone.create(), espeak(command) if command else None)
