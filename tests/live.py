"""Real processes for end-to-end tests: a `cunping serve` server and `cunping player` players.

Used by tests/browser and tests/e2e. Each process writes a log file; a test that fails prints
the tails so the reason is visible in CI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def cunping() -> list[str]:
    """The `cunping` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "cunping"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Process:
    """A child process with its log file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    _out: Any = None

    def start(self) -> None:
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=self._out,
                                        stderr=subprocess.STDOUT)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._out is not None:
            self._out.close()
            self._out = None

    def log_tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class LiveServer(Process):
    """`cunping serve` on a free port, on its own instance folder."""

    port: int = 0
    instance: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, folder: Path, *, demo: bool = True, extra_env: dict[str, str] | None = None,
               port: int | None = None) -> LiveServer:
        instance = folder / "instance"
        port = port or free_port()
        env = {
            **os.environ,
            "CUNPING_INSTANCE": str(instance),
            "DATABASE_URL": "",  # the embedded default: SQLite in the instance folder
            "CUNPING_ENV": "development",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        server = cls(args=[*cunping(), "serve", "--port", str(port)], env=env,
                     log=folder / "server.log", port=port, instance=instance)
        if demo:
            server.run_cli("demo")
        else:
            server.run_cli("db", "upgrade")
        return server

    def run_cli(self, *args: str, timeout: float = 120) -> str:
        """Run a `cunping` command against this server's instance; returns its output."""
        done = subprocess.run([*cunping(), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"`cunping {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def run_python(self, code: str, timeout: float = 60) -> str:
        """Run Python code in an app context of this instance (for setting up data)."""
        script = (
            "from server import create_app\n"
            "app = create_app()\n"
            "with app.app_context():\n"
            + "\n".join("    " + line for line in code.strip().splitlines())
        )
        done = subprocess.run([sys.executable, "-c", script], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"setup code failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        super().start()
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        def healthy() -> bool:
            if not self.running():
                assert self.process is not None
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout, interval=0.2, what="server /healthz")


@dataclass
class LivePlayer(Process):
    """`cunping player` with the headless display, writing its frames into a folder."""

    frames: Path = field(default_factory=Path)
    data: Path = field(default_factory=Path)

    @classmethod
    def create(cls, folder: Path, server_url: str, token: str | None,
               size: str = "1280x720") -> LivePlayer:
        frames, data = folder / "frames", folder / "data"
        frames.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        args = [*cunping(), "player", "--server", server_url, "--display", "headless",
                "--frames-dir", str(frames), "--data-dir", str(data), "--size", size]
        if token:
            args += ["--token", token]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return cls(args=args, env=env, log=folder / "player.log", frames=frames, data=data)

    def frames_log(self) -> list[dict[str, Any]]:
        """Every frame the player has shown so far (frames.jsonl), oldest first."""
        path = self.frames / "frames.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written right now
                    continue
        return rows
