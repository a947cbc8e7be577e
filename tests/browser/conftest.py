"""A real server for browser tests: `cunping demo` into a temporary instance folder, then
`cunping serve` on a free port, driven by Playwright through Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@dataclass
class LiveServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _cunping() -> list[str]:
    """The `cunping` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "cunping"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(server: LiveServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"the server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /healthz in {timeout} s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("browser")
    instance = folder / "instance"
    env = {
        **os.environ,
        "CUNPING_INSTANCE": str(instance),
        "DATABASE_URL": "",  # the embedded default: SQLite in the instance folder
        "CUNPING_ENV": "development",
        "PYTHONUNBUFFERED": "1",
    }
    log = folder / "server.log"
    with log.open("wb") as out:
        demo = subprocess.run(
            [*_cunping(), "demo"], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=120
        )
    if demo.returncode != 0:
        raise RuntimeError(f"`cunping demo` failed:\n{log.read_text(errors='replace')}")
    port = _free_port()
    out = log.open("ab")
    process = subprocess.Popen(
        [*_cunping(), "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    server = LiveServer(url=f"http://127.0.0.1:{port}", log=log, process=process)
    try:
        _wait_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        out.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _server_log_on_failure(
    request: pytest.FixtureRequest, live_server: LiveServer
) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\n--- server log ({live_server.log}) ---\n{live_server.log_tail(200)}")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        raise RuntimeError(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
