"""Alert sound: the tone and the voice follow the alert on screen (fakes), the beep buffer,
espeak-ng as a real child process (a stand-in script), pygame's mixer with SDL's dummy driver."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from array import array
from pathlib import Path

from player import protocol
from player.sound import AlertAudio, beep_pattern, espeak, make_audio, spoken_text
from tests.player.conftest import make_alert

ROOT = Path(__file__).resolve().parents[2]


class FakeTone:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")


class FakeVoice:
    def __init__(self, text: str) -> None:
        self.text = text
        self.done = False
        self.terminated = False

    def poll(self) -> int | None:
        return 0 if self.done or self.terminated else None

    def terminate(self) -> None:
        self.terminated = True

    def kill(self) -> None:
        self.terminated = True

    def wait(self, timeout: float | None = None) -> int:
        return 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tone_and_voice_follow_the_alert() -> None:
    tone, clock = FakeTone(), Clock()
    voices: list[FakeVoice] = []

    def say(text: str) -> FakeVoice:
        voices.append(FakeVoice(text))
        return voices[-1]

    audio = AlertAudio(tone, say, repeat=180, clock=clock)
    alert = make_alert("AL1", event="暴雨", level=1)
    keys = frozenset({protocol.alert_key(alert)})
    audio.update(None, frozenset())
    assert tone.events == [] and voices == []
    audio.update(alert, keys)
    assert len(voices) == 1
    assert voices[0].text.startswith("暴雨红色预警")
    assert alert["title"] in voices[0].text and alert["text"] in voices[0].text
    assert tone.events == []  # the tone waits while the voice reads
    audio.update(alert, keys)
    assert len(voices) == 1  # not again while it speaks
    voices[0].done = True
    audio.update(alert, keys)
    assert tone.events == ["start"] and len(voices) == 1
    clock.now += 179
    audio.update(alert, keys)
    assert len(voices) == 1
    clock.now += 2  # a few minutes later: read again, the tone pauses
    audio.update(alert, keys)
    assert len(voices) == 2 and tone.events == ["start", "stop"]
    # cancelled while being read: the voice is stopped, and so is the tone
    audio.update(None, frozenset())
    assert voices[1].terminated
    assert tone.events[-1] == "stop" or tone.events == ["start", "stop"]
    assert not audio.tone_on


def test_an_ended_alert_is_not_read_on() -> None:
    voices: list[FakeVoice] = []
    audio = AlertAudio(None, lambda t: voices.append(FakeVoice(t)) or voices[-1],
                       clock=Clock())
    a, b = make_alert("A1"), make_alert("B1", level=2)
    audio.update(a, frozenset({"A1:1", "B1:1"}))
    audio.update(b, frozenset({"B1:1"}))  # A1 cancelled while being read
    assert voices[0].terminated
    assert "B1" not in voices[0].text and len(voices) == 2  # B1 is read now
    audio.close()
    assert voices[1].terminated


def test_a_voice_that_cannot_start_is_logged() -> None:
    def broken(text: str) -> FakeVoice:
        raise OSError("no such file")

    tone = FakeTone()
    audio = AlertAudio(tone, broken, clock=Clock())
    audio.update(make_alert(), frozenset({"AL1:1"}))
    assert tone.events == ["start"]  # the tone goes on


def test_silent_audio_does_nothing() -> None:
    audio = make_audio(enabled=False)
    assert not audio.enabled
    audio.update(make_alert(), frozenset({"AL1:1"}))
    audio.close()


def test_spoken_text_includes_the_instruction() -> None:
    text = spoken_text(make_alert(level=3, event="大风", instruction="减少外出"))
    assert text.startswith("大风黄色预警")
    assert text.endswith("减少外出")


def test_beep_pattern_is_a_sine_beep_then_silence() -> None:
    data = beep_pattern(8000, period=3.0)
    samples = array("h", data)
    if sys.byteorder != "little":
        samples.byteswap()
    assert len(samples) == 24000
    assert 15000 < max(samples) <= 32767 * 0.5 + 1
    assert min(samples) < -15000
    assert samples[0] == 0  # fades in: no click
    assert not any(samples[-4000:])  # silence until the next repeat
    assert len(beep_pattern(8000, channels=2, period=3.0)) == 2 * len(data)


def test_espeak_reads_the_text_from_stdin_in_a_child_process(tmp_path: Path) -> None:
    out = tmp_path / "said.txt"
    script = tmp_path / "espeak-ng"
    script.write_text(f'#!/bin/sh\necho "$@" > {out}.args\ncat > {out}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    started = time.monotonic()
    proc = espeak(str(script))("暴雨红色预警。请转移")
    assert time.monotonic() - started < 2
    assert proc.wait(timeout=10) == 0
    assert out.read_text() == "暴雨红色预警。请转移"
    assert Path(f"{out}.args").read_text().split() == ["-v", "zh", "-s", "150", "--stdin"]


def test_pygame_tone_with_the_dummy_audio_driver() -> None:
    code = """
import os
os.environ["SDL_AUDIODRIVER"] = "dummy"
from player.sound import PygameTone
tone = PygameTone.create()
assert tone is not None
tone.start(); tone.start()
assert tone.playing and tone.sound.get_num_channels() == 1
tone.stop()
print(round(tone.sound.get_length()))
"""
    env = {**os.environ, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"
