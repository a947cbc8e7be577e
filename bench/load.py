"""Load harness: N simulated screens against the real server, and the bare stack beside it.

    .venv/bin/python bench/load.py --screens 1000                    # publish, alert, reconnect
    .venv/bin/python bench/load.py --screens 10000 --update-docs     # figures for the docs
    .venv/bin/python bench/load.py --screens 20000 --scenarios redis # two processes + Redis

Scenarios (--scenarios, comma-separated; default publish,alert,reconnect):

  publish    N screens connect (connect rate, server CPU while connecting, server memory per
             connection = (RSS with N connected − RSS before) / N, from /proc); an editor
             publishes a county-wide notice through the API; delivery latency from just before
             the API call to each screen holding it (p50/p95/p99/max) and whether all N got it;
             server CPU during the publish. Then the same against bench/bare_server.py
             (Flask-SocketIO + gevent, no application logic) with an event of the same size, in
             the same run: the ratios app/bare for p99 and memory per connection.
  alert      with the N connected, an alert to the county through the API: time until the API's
             delivery report shows all N acknowledged; when each screen received it.
  reconnect  with the N connected, SIGTERM the server, publish a notice while it is down (the
             services, as the CLI would), start it again: time until every screen is back and
             holds the new notice at the new revision; screens missed; an editor's admin pages
             sampled meanwhile (latency p50/max, failures).
  redis      two server processes with SOCKETIO_MESSAGE_QUEUE on a redis-server started here;
             screens split over both; publish through one; delivery latency to all N; then a
             restart storm across both (as reconnect; --no-redis-storm skips it).

The screens are bench/lightclient.py greenlets (the player's protocol over raw WebSocket frames)
in --client-procs worker processes; they are provisioned in bulk with real tokens by
bench/provision.py, spread over --towns × --villages villages. The server runs as production
does: gunicorn with deploy/gunicorn.conf.py (one gevent worker) when it is there, else
`cunping serve` (--serve picks); PostgreSQL (a throwaway one, tests/pg.py) or SQLite (--db).

Results: a JSON file and a Markdown table in --out (default bench/results/); --update-docs
rewrites the "Scale" section of docs/performance.md with the table, the machine and the command.
Heavy runs on a shared machine: wrap them in `flock /tmp/cunping-heavy.lock …`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SCENARIOS = ("publish", "alert", "reconnect", "redis")
NOTICE_BODY = (
    "各位村民：\n\n"
    "根据县里统一安排，本月起开展农村人居环境整治“回头看”。请各户清理房前屋后的柴草、杂物和"
    "积存垃圾，禁止在河道、沟渠倾倒垃圾；畜禽实行圈养，粪污及时清运。\n\n"
    "| 时间 | 内容 | 责任人 |\n| --- | --- | --- |\n"
    "| 周一至周三 | 清理房前屋后 | 各户 |\n| 周四 | 河道沟渠保洁 | 保洁员 |\n"
    "| 周五 | 村两委检查评比 | 村委会 |\n\n"
    "**检查结果将在村务公开栏公示。** 有问题请拨打村委会电话，或扫码留言。"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- measuring -------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max (nearest rank) of seconds, in milliseconds."""
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    xs = sorted(values)

    def rank(p: float) -> float:
        return round(xs[max(0, min(len(xs) - 1, int(-(-p * len(xs) // 1)) - 1))] * 1000, 1)

    return {"n": len(xs), "p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99),
            "max_ms": round(xs[-1] * 1000, 1)}


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn: the arbiter and its worker)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
    return found


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process tree so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def machine() -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip() if ":" in line else \
                        line.split("=", 1)[1].strip().strip('"')
        return "?"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    # Uncommitted changes to the server's code: the figures are not those of `commit`.
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "server", "admin", "player",
                            "deploy"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if dirty:
        commit += " + uncommitted changes"

    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory_gib": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb.isdigit() else None,
        "os": first("/etc/os-release", "PRETTY_NAME"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
    }


def raise_open_files() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and its children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.25,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


# --- HTTP -------------------------------------------------------------------------------------


class Api:
    """The JSON API with a bearer token (like tests/e2e's, with a longer timeout)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float = 60) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")


class AdminSession:
    """An editor logged in to the admin (cookie session, CSRF token from the login form)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with self.opener.open(base + "/admin/login", timeout=30) as resp:
            html = resp.read().decode()
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', html)
        if match is None:
            raise RuntimeError("no CSRF token on the login page")
        form = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrf_token": match.group(1)}).encode()
        with self.opener.open(base + "/admin/login", data=form, timeout=30) as resp:
            if "/login" in resp.geturl():
                raise RuntimeError("admin login failed")

    def get(self, path: str, timeout: float = 30) -> float:
        """Seconds to fetch `path` (an error status or a redirect to login raises)."""
        began = time.monotonic()
        with self.opener.open(self.base + path, timeout=timeout) as resp:
            resp.read()
            if "/login" in resp.geturl():
                raise RuntimeError("logged out")
        return time.monotonic() - began


class Sampler(threading.Thread):
    """Fetches admin pages in turn every `interval` s until stopped; latencies per page."""

    def __init__(self, session: AdminSession, paths: list[str], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.session, self.paths, self.interval = session, paths, interval
        self.times: dict[str, list[float]] = {p: [] for p in paths}
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                self.times[path].append(self.session.get(path))
            except (OSError, RuntimeError) as exc:
                self.errors.append(f"{path}: {exc}")
            self.halt.wait(self.interval)

    def report(self) -> dict[str, Any]:
        return {"pages": {p: percentiles(t) for p, t in self.times.items()},
                "errors": len(self.errors), "first_errors": self.errors[:3]}


# --- processes --------------------------------------------------------------------------------


@dataclass
class Server:
    """One server process (the app or the bare stack) on a port, with its log."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=ROOT)
        out.close()

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, interval=0.1, what=f"{self.name} /healthz")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM, wait; SIGKILL after `timeout`. Returns the seconds it took to exit."""
        began = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout} s: killed")
                for pid in reversed(process_tree(self.process.pid)):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return time.monotonic() - began

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def venv_bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def use_gunicorn(choice: str) -> bool:
    available = (ROOT / "deploy" / "gunicorn.conf.py").exists() and \
        (ROOT / "server" / "wsgi.py").exists() and shutil.which(venv_bin("gunicorn")) is not None
    if choice == "gunicorn" and not available:
        raise SystemExit("--serve gunicorn: deploy/gunicorn.conf.py, server/wsgi.py or gunicorn "
                         "is missing")
    return available if choice == "auto" else choice == "gunicorn"


def app_server(name: str, folder: Path, env: dict[str, str], port: int, gunicorn: bool) -> Server:
    env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "CUNPING_PORT": str(port),
           "CUNPING_BIND": f"127.0.0.1:{port}"}
    if gunicorn:
        args = [venv_bin("gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
    else:
        args = [venv_bin("cunping"), "serve", "--port", str(port), "--no-migrate"]
    return Server(name, args, env, port, folder / f"{name}.log")


def bare_server(folder: Path, env: dict[str, str], port: int, gunicorn: bool) -> Server:
    if gunicorn:  # the same worker settings as deploy/gunicorn.conf.py, without the app's hooks
        args = [venv_bin("gunicorn"), "-k", "gevent", "-w", "1", "--worker-connections", "20000",
                "--backlog", "4096", "-b", f"127.0.0.1:{port}", "--no-control-socket",
                "bench.bare_server:create_app()"]
        env = {**env, "PYTHONPATH": str(ROOT)}
    else:
        args = [sys.executable, str(BENCH / "bare_server.py"), "--port", str(port)]
    return Server("bare", args, env, port, folder / "bare.log")


class Redis:
    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found (apt-get install redis-server)")
        self.port = free_port()
        with (folder / "redis.log").open("ab") as out:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(folder), "--maxclients", "1000"],
                stdout=out, stderr=subprocess.STDOUT)

        def up() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            return False

        wait_for(up, 20, interval=0.1, what="redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Profiler:
    """py-spy on a server process for one phase (--profile): collapsed stacks in a file, and
    the functions of the application (server/, admin/, player/) taking the most samples."""

    def __init__(self, enabled: bool, out: Path, native: bool = False) -> None:
        self.enabled, self.out, self.native = enabled or native, out, native
        self.summaries: dict[str, Any] = {}
        if enabled and shutil.which(venv_bin("py-spy")) is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy)")

    @contextlib.contextmanager
    def phase(self, name: str, server: Server) -> Any:
        if not self.enabled:
            yield
            return
        pid = process_tree(server.pid)[-1]  # gunicorn: the worker
        path = self.out / f"profile-{name}.txt"
        # --native needs to stop the process for each sample (py-spy refuses --nonblocking).
        how = ["--native"] if self.native else ["--nonblocking"]
        with path.with_suffix(".log").open("w") as err:
            rate = "50" if self.native else "200"  # stopping the process costs
            spy = subprocess.Popen([venv_bin("py-spy"), "record", "-p", str(pid), "-r", rate,
                                    "-f", "raw", "-o", str(path), *how],
                                   stdout=err, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            self.summaries[name] = self.summary(path)
            log(f"profile of {name}: {path}")

    @staticmethod
    def summary(path: Path, top: int = 15) -> dict[str, Any]:
        """Inclusive samples per application function (each counted once per stack)."""
        total, counts = 0, {}
        if not path.exists():
            return {"samples": 0, "top": []}
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            total += int(n)
            seen = set()
            for frame in stack.split(";"):
                if any(part in frame for part in ("server/", "admin/", "player/", "gc_collect")) \
                        and frame not in seen:
                    seen.add(frame)
                    counts[frame] = counts.get(frame, 0) + int(n)
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return {"samples": total,
                "top": [{"frame": f, "share": round(c / max(1, total), 3)} for f, c in ranked]}


class Database:
    """PostgreSQL (a throwaway server from tests/pg.py) or SQLite in the instance folder."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.kind = kind
        self.pg: Any = None
        if kind == "postgres":
            sys.path.insert(0, str(ROOT))
            from tests.pg import PostgresServer

            self.pg = PostgresServer.start()
            self.url = self.pg.fresh_database()
        else:
            self.url = "sqlite:///" + str(folder / "instance" / "cunping.db")

    def stop(self) -> None:
        if self.pg is not None:
            self.pg.stop()


# --- the simulated screens ----------------------------------------------------------------------


class Pool:
    """Simulated screens in worker processes (bench/lightclient.py), driven over pipes."""

    def __init__(self, clients: list[tuple[int, str, str]], procs: int, concurrency: int,
                 folder: Path, heartbeat: bool = True) -> None:
        self.size = len(clients)
        procs = max(1, min(procs, len(clients)))
        self.workers: list[subprocess.Popen[str]] = []
        for w in range(procs):
            err = (folder / f"clients-{w}.log").open("a")
            self.workers.append(subprocess.Popen(
                [sys.executable, str(BENCH / "lightclient.py")], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT))
            err.close()
        for w, worker in enumerate(self.workers):
            share = clients[w::procs]
            config = {"clients": share, "heartbeat": heartbeat,
                      "concurrency": max(1, concurrency // procs)}
            assert worker.stdin is not None
            worker.stdin.write(json.dumps(config) + "\n")
            worker.stdin.flush()
        # From when the first worker had its screens running (not from the interpreters'
        # start-up): the connect rate is the server's, not Python's import time.
        self.started = min(float(self.read(worker)["started"]) for worker in self.workers)

    @staticmethod
    def read(worker: subprocess.Popen[str]) -> dict[str, Any]:
        assert worker.stdout is not None
        reply = worker.stdout.readline()
        if not reply:
            raise RuntimeError(f"a client worker exited ({worker.poll()})")
        return dict(json.loads(reply))

    def ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        line = json.dumps(command) + "\n"
        for worker in self.workers:
            assert worker.stdin is not None
            worker.stdin.write(line)
            worker.stdin.flush()
        return [self.read(worker) for worker in self.workers]

    def status(self) -> dict[str, Any]:
        replies = self.ask({"cmd": "status"})
        total: dict[str, Any] = {k: sum(r[k] for r in replies) for k in (
            "screens", "connected", "ever_connected", "connects", "drops", "failures", "busy")}
        total["last_first_connect"] = max(r["last_first_connect"] for r in replies)
        total["last_error"] = next((r["last_error"] for r in replies if r["last_error"]), "")
        total["last_drop"] = next((r["last_drop"] for r in replies if r["last_drop"]), "")
        for name in ("kinds", "hints"):
            counts: dict[str, int] = {}
            for r in replies:
                for kind, count in r.get(name, {}).items():
                    counts[kind] = counts.get(kind, 0) + count
            total[name] = counts
        return total

    def holds(self, code: str) -> dict[str, Any]:
        replies = self.ask({"cmd": "holds", "code": code})
        revisions: dict[str, int] = {}
        for r in replies:
            for rev, count in r["revisions"].items():
                revisions[rev] = revisions.get(rev, 0) + count
        return {"times": [t for r in replies for t in r["times"]],
                "missing": sum(r["missing"] for r in replies),
                "connected": sum(r["connected"] for r in replies),
                "revisions": revisions,
                "bytes": next((r["bytes"] for r in replies if r["bytes"]), None)}

    def alert(self, key: str) -> dict[str, Any]:
        replies = self.ask({"cmd": "alert", "key": key})
        return {"times": [t for r in replies for t in r["times"]],
                "missing": sum(r["missing"] for r in replies)}

    def wait_connected(self, timeout: float) -> dict[str, Any]:
        """Until every screen has connected once; the connect phase's figures."""
        last = {"ever_connected": 0}

        def done() -> bool:
            last.update(self.status())
            return last["ever_connected"] >= self.size

        try:
            wait_for(done, timeout, interval=0.25, what=f"{self.size} screens connected")
        except TimeoutError:
            log(f"only {last['ever_connected']} of {self.size} connected; last error: "
                f"{last.get('last_error')}")
            raise
        seconds = max(1e-6, last["last_first_connect"] - self.started)
        return {"screens": self.size, "seconds": round(seconds, 2),
                "per_second": round(self.size / seconds, 1), "failures": last["failures"],
                "busy_refusals": last["busy"]}

    def wait_holding(self, code: str, since: float, timeout: float) -> dict[str, Any]:
        """Until every screen holds notice `code` (or `timeout`): latencies from `since`."""
        last: dict[str, Any] = {}

        def done() -> bool:
            last.update(self.holds(code))
            return last["missing"] == 0

        with contextlib.suppress(TimeoutError):
            wait_for(done, timeout, interval=0.2, what=f"notice {code} on every screen")
        times = [t - since for t in last["times"]]
        return {**percentiles(times), "reached": len(times), "missing": last["missing"],
                "all_reached": last["missing"] == 0, "all_at_s": round(max(times), 2)
                if times and last["missing"] == 0 else None,
                "revisions": last["revisions"], "event_bytes": last["bytes"]}

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.ask({"cmd": "stop"})
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    folder: Path
    gunicorn: bool
    db: Database
    env: dict[str, str]
    secrets: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    url: str = ""  # the app server the API calls go to
    profiler: Profiler | None = None

    def phase(self, name: str, server: Server) -> Any:
        assert self.profiler is not None
        return self.profiler.phase(name, server)

    @property
    def n(self) -> int:
        return int(self.args.screens)

    def timeout(self, base: float) -> float:
        """Generous limits that grow with N (a busy 2-core machine is slow, not broken)."""
        return base + self.n / 100

    def cli(self, *args: str) -> None:
        done = subprocess.run([venv_bin("cunping"), *args], env=self.env, capture_output=True,
                              text=True, cwd=ROOT, timeout=600)
        if done.returncode:
            raise RuntimeError(f"cunping {' '.join(args)}:\n{done.stdout}{done.stderr}")

    def provision(self) -> None:
        began = time.monotonic()
        self.cli("db", "upgrade")
        out = self.folder / "secrets.json"
        done = subprocess.run(
            [sys.executable, str(BENCH / "provision.py"), "--screens", str(self.n),
             "--towns", str(self.args.towns), "--villages", str(self.args.villages),
             "--out", str(out)], env=self.env, capture_output=True, text=True, cwd=ROOT,
            timeout=1800)
        if done.returncode:
            raise RuntimeError(f"provisioning failed:\n{done.stdout}{done.stderr}")
        self.secrets = json.loads(out.read_text())
        self.results["provision_s"] = round(time.monotonic() - began, 1)
        log(f"provisioned {self.n} screens in {self.results['provision_s']} s")

    def clients(self, urls: list[str], tokens: list[str] | None = None) -> Pool:
        tokens = tokens or self.secrets["screens"]
        clients = [(i, token, urls[i % len(urls)]) for i, token in enumerate(tokens)]
        return Pool(clients, self.args.client_procs, self.args.concurrency, self.folder)

    # -- pieces shared by the scenarios --

    def connect(self, server: Server, pool: Pool) -> dict[str, Any]:
        cpu0 = cpu_seconds(server.pid)
        with self.phase(f"{server.name}-connect", server):
            connect = pool.wait_connected(60 + self.n / 10)
        connect["server_cpu_s"] = round(cpu_seconds(server.pid) - cpu0, 2)
        log(f"{server.name}: {self.n} connected in {connect['seconds']} s "
            f"({connect['per_second']}/s)")
        return connect

    def memory(self, server: Server, rss0: int) -> dict[str, Any]:
        time.sleep(self.args.settle)  # the first heartbeats and the connect work are done
        rss1 = rss_bytes(server.pid)
        result = {"rss_before_mib": round(rss0 / 2**20, 1),
                  "rss_connected_mib": round(rss1 / 2**20, 1),
                  "per_connection_kib": round((rss1 - rss0) / self.n / 1024, 1)}
        if self.args.idle > 0:
            # Connected and quiet: what N screens cost in heartbeats, syncs and pings alone.
            cpu0 = cpu_seconds(server.pid)
            with self.phase(f"{server.name}-idle", server):
                time.sleep(self.args.idle)
            result["idle_cpu_share"] = round((cpu_seconds(server.pid) - cpu0) / self.args.idle,
                                             3)
        return result

    def draft(self, title: str) -> int:
        editor = Api(self.url, self.secrets["editor"])
        reviewer = Api(self.url, self.secrets["reviewer"])
        notice = editor.call("POST", "/notices", {
            "title": title, "body": NOTICE_BODY, "category": "notice",
            "targets": [self.secrets["county"]], "duration_s": 20})
        editor.call("POST", f"/notices/{notice['id']}/submit", {})
        reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
        return int(notice["id"])

    def publish(self, server: Server, pool: Pool, title: str) -> dict[str, Any]:
        notice_id = self.draft(title)
        editor = Api(server.url, self.secrets["editor"])
        cpu0 = cpu_seconds(server.pid)
        t0 = time.time()
        with self.phase(f"{server.name}-publish", server):
            code = editor.call("POST", f"/notices/{notice_id}/publish", {})["code"]
            api_s = time.time() - t0
            result = pool.wait_holding(code, t0, self.timeout(30))
        result["api_ms"] = round(api_s * 1000, 1)
        result["server_cpu_s"] = round(cpu_seconds(server.pid) - cpu0, 2)
        result["code"] = code
        log(f"{server.name} publish: {summary(result)}")
        return result

    # -- scenarios --

    def app_scenarios(self, wanted: list[str]) -> None:
        port = free_port()
        server = app_server("app", self.folder, self.env, port, self.gunicorn)
        self.url = server.url
        server.start()
        pool: Pool | None = None
        try:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    server.url + "/healthz", timeout=5) as resp:
                resp.read()
            time.sleep(1)
            rss0 = rss_bytes(server.pid)
            pool = self.clients([server.url])
            app: dict[str, Any] = {"connect": self.connect(server, pool)}
            app["memory"] = self.memory(server, rss0)
            self.results["app"] = app
            if "publish" in wanted:
                app["publish"] = self.publish(server, pool, "压测县人居环境整治通知")
            if "alert" in wanted:
                app["alert"] = self.alert(server, pool)
            if "reconnect" in wanted:
                [server], app["reconnect"] = self.reconnect([server], pool)
        finally:
            if pool is not None:
                pool.stop()
            server.stop()

    def alert(self, server: Server, pool: Pool) -> dict[str, Any]:
        api = Api(server.url, self.secrets["alerter"])
        t0 = time.time()
        alert = api.call("POST", "/alerts", {
            "level": "I", "event": "地震", "title": "压测县地震预警（演练）",
            "text": "这是一次压测演练。", "targets": [self.secrets["county"]]})
        api_s = time.time() - t0
        key = f"{alert['code']}:{alert['version']}"
        acked: dict[str, Any] = {}

        def all_acked() -> bool:
            delivery = api.call("GET", f"/alerts/{alert['code']}")["delivery"]
            acked.update(delivery)
            return int(delivery["acknowledged"]) >= self.n

        acked_s: float | None = None
        with self.phase("app-alert", server), contextlib.suppress(TimeoutError):
            wait_for(all_acked, self.timeout(30), interval=0.25,
                     what="every acknowledgement in the delivery report")
            acked_s = round(time.time() - t0, 2)
        received = pool.alert(key)
        result = {**percentiles([t - t0 for t in received["times"]]),
                  "received": len(received["times"]), "missing": received["missing"],
                  "api_ms": round(api_s * 1000, 1), "all_acknowledged_s": acked_s,
                  "acknowledged": acked.get("acknowledged"), "targeted": acked.get("targeted")}
        log(f"alert: {summary(result)}, all acknowledged in the API after {acked_s} s")
        api.call("POST", f"/alerts/{alert['code']}/cancel", {"reason": "压测结束"})
        time.sleep(2)
        return result

    def reconnect(self, servers: list[Server], pool: Pool) -> tuple[list[Server], dict[str, Any]]:
        """Stop every server, publish while they are down, start them again: the storm."""
        notice_id = self.draft("压测县停电检修通知")
        admin = AdminSession(servers[0].url, *self.secrets["editor_login"])
        before = pool.status()
        t_kill = time.time()
        stop_s = max(server.stop() for server in servers)
        log(f"servers stopped in {stop_s:.1f} s; publishing while they are down")
        published = self.publish_offline(notice_id)
        new = [app_server(s.name, self.folder, s.env, s.port, self.gunicorn) for s in servers]
        for server in new:
            server.start(timeout=120)
        t_up = time.time()
        sampler = Sampler(admin, ["/admin/notices", "/admin/dashboard"])
        sampler.start()
        cpu0 = [cpu_seconds(s.pid) for s in new]
        with self.phase("app-storm", new[0]):
            back = pool.wait_holding(published["code"], t_kill, self.timeout(90))
        cpu = [round(cpu_seconds(s.pid) - c, 1) for s, c in zip(new, cpu0, strict=True)]
        sampler.halt.set()
        sampler.join(timeout=60)
        after = pool.status()
        revisions = back.pop("revisions")
        at_revision = revisions.get(str(published["revision"]), 0)
        result = {
            "processes": len(new),
            "stop_s": round(stop_s, 1), "down_s": round(t_up - t_kill, 1),
            "all_back_s": back["all_at_s"],
            "all_back_after_up_s": round(back["all_at_s"] - (t_up - t_kill), 1)
            if back["all_at_s"] is not None else None,
            "missed": back["missing"], "revision": published["revision"],
            "at_revision": at_revision, "revisions": revisions,
            "connected": after["connected"],
            "reconnects": after["connects"] - before["connects"],
            "failed_attempts": after["failures"] - before["failures"],
            "busy_refusals": after["busy"] - before["busy"],
            # the other failed attempts, by kind
            "failed_by_kind": {k: n - before["kinds"].get(k, 0)
                               for k, n in after["kinds"].items()
                               if n - before["kinds"].get(k, 0)},
            # the busy refusals' Retry-After hints, bucketed
            "busy_hints": {k: n - before["hints"].get(k, 0)
                           for k, n in sorted(after["hints"].items())
                           if n - before["hints"].get(k, 0)},
            "server_cpu_s": cpu,
            "latency_from_stop": {k: back[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "admin": sampler.report(),
        }
        log(f"reconnect: all back {result['all_back_s']} s after SIGTERM "
            f"({result['all_back_after_up_s']} s after the servers were up), missed "
            f"{result['missed']}, at revision {at_revision}/{self.n}; admin {result['admin']}")
        return new, result

    def publish_offline(self, notice_id: int) -> dict[str, Any]:
        """Publish through the services in a separate process while the server is down."""
        code = (
            "import json\n"
            "from server import create_app\n"
            "from server.models import Notice\n"
            "from server.extensions import db\n"
            "from server.services import notices, revisions, users\n"
            "app = create_app()\n"
            "with app.app_context():\n"
            f"    notice = db.session.get(Notice, {notice_id})\n"
            f"    editor = users.authenticate({self.secrets['editor_login'][0]!r}, "
            f"{self.secrets['editor_login'][1]!r})\n"
            "    notices.publish(editor, notice)\n"
            "    print(json.dumps({'code': notice.code, 'revision': revisions.current()}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                              text=True, cwd=ROOT, timeout=120)
        if done.returncode:
            raise RuntimeError(f"publishing offline failed:\n{done.stdout}{done.stderr}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def bare(self) -> None:
        size = (self.results.get("app", {}).get("publish", {}).get("event_bytes")
                or self.args.bare_bytes)
        server = bare_server(self.folder, self.env, free_port(), self.gunicorn)
        server.start()
        pool: Pool | None = None
        try:
            time.sleep(1)
            rss0 = rss_bytes(server.pid)
            pool = self.clients([server.url], ["bare"] * self.n)
            bare: dict[str, Any] = {"connect": self.connect(server, pool)}
            bare["memory"] = self.memory(server, rss0)
            cpu0 = cpu_seconds(server.pid)
            t0 = time.time()
            req = urllib.request.Request(
                server.url + "/emit", method="POST", headers={"Content-Type": "application/json"},
                data=json.dumps({"size": size, "revision": 1, "code": "bare1"}).encode())
            with urllib.request.urlopen(req, timeout=60) as resp:
                resp.read()
            api_s = time.time() - t0
            publish = pool.wait_holding("bare1", t0, self.timeout(30))
            publish["api_ms"] = round(api_s * 1000, 1)
            publish["server_cpu_s"] = round(cpu_seconds(server.pid) - cpu0, 2)
            bare["publish"] = publish
            log(f"bare publish: {summary(publish)}")
            self.results["bare"] = bare
        finally:
            if pool is not None:
                pool.stop()
            server.stop()

    def redis(self) -> None:
        broker = Redis(self.folder)
        env = {**self.env, "SOCKETIO_MESSAGE_QUEUE": broker.url}
        servers = [app_server(f"app{i + 1}", self.folder, env, free_port(), self.gunicorn)
                   for i in range(2)]
        pool: Pool | None = None
        try:
            for s in servers:
                s.start()
            time.sleep(1)
            rss0 = [rss_bytes(s.pid) for s in servers]
            self.url = servers[0].url
            pool = self.clients([s.url for s in servers])
            cpu0 = [cpu_seconds(s.pid) for s in servers]
            connect = pool.wait_connected(60 + self.n / 10)
            connect["server_cpu_s"] = [round(cpu_seconds(s.pid) - c, 2)
                                       for s, c in zip(servers, cpu0, strict=True)]
            time.sleep(self.args.settle)
            memory = [round((rss_bytes(s.pid) - r) / (self.n / 2) / 1024, 1)
                      for s, r in zip(servers, rss0, strict=True)]
            publish = self.publish(servers[0], pool, "压测县两进程通知")
            self.results["redis"] = {"processes": 2, "connect": connect,
                                     "per_connection_kib": memory, "publish": publish}
            if self.args.redis_storm:
                servers, self.results["redis"]["reconnect"] = self.reconnect(servers, pool)
        finally:
            if pool is not None:
                pool.stop()
            for s in servers:
                s.stop()
            broker.stop()


def summary(result: dict[str, Any]) -> str:
    return (f"p50 {result.get('p50_ms')} ms, p95 {result.get('p95_ms')} ms, "
            f"p99 {result.get('p99_ms')} ms, max {result.get('max_ms')} ms, "
            f"missing {result.get('missing')}")


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    app, bare = results.get("app", {}), results.get("bare", {})

    def ratio(a: Any, b: Any) -> float | None:
        return round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) \
            and b > 0 else None

    return {
        "p99": ratio(app.get("publish", {}).get("p99_ms"), bare.get("publish", {}).get("p99_ms")),
        "memory_per_connection": ratio(app.get("memory", {}).get("per_connection_kib"),
                                       bare.get("memory", {}).get("per_connection_kib")),
        "connect_cpu": ratio(app.get("connect", {}).get("server_cpu_s"),
                             bare.get("connect", {}).get("server_cpu_s")),
        "idle_cpu": ratio(app.get("memory", {}).get("idle_cpu_share"),
                          bare.get("memory", {}).get("idle_cpu_share")),
    }


# --- reporting ----------------------------------------------------------------------------------


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 100:
        value = round(value)
    return f"{value:,}{unit}" if isinstance(value, int | float) else f"{value}{unit}"


def markdown(report: dict[str, Any]) -> str:
    """The results as a Markdown table: target, measured, verdict."""
    r, n = report["results"], report["screens"]
    app, bare, ratio = r.get("app", {}), r.get("bare", {}), report.get("ratios", {})
    rows: list[tuple[str, str, str]] = []

    def add(what: str, measured: str, target: str = "") -> None:
        rows.append((what, measured, target))

    def reach(p: dict[str, Any]) -> str:
        return "all reached" if p["all_reached"] else f"{p['missing']} missed"

    for name, side in (("app", app), ("bare", bare)):
        if "connect" in side:
            c = side["connect"]
            add(f"{name}: {n:,} screens connect", f"{fmt(c['seconds'])} s "
                f"({fmt(c['per_second'])}/s), server CPU {fmt(c['server_cpu_s'])} s")
        if "memory" in side:
            add(f"{name}: server memory per connection",
                f"{fmt(side['memory']['per_connection_kib'])} KiB")
            if side["memory"].get("idle_cpu_share") is not None:
                add(f"{name}: server CPU with {n:,} connected, idle (heartbeats)",
                    f"{round(side['memory']['idle_cpu_share'] * 100)}% of a core")
        if "publish" in side:
            p = side["publish"]
            add(f"{name}: publish → all {n:,} screens",
                f"p50 {fmt(p['p50_ms'])} / p95 {fmt(p['p95_ms'])} / p99 {fmt(p['p99_ms'])} / "
                f"max {fmt(p['max_ms'])} ms; {reach(p)}"
                f"; server CPU {fmt(p['server_cpu_s'])} s",
                "p95 ≤ 500 ms" if name == "app" else "")
    for key, what, target in (("p99", "publish p99", "≤ 1.15×"),
                              ("memory_per_connection", "memory per connection", "≤ 1.1×"),
                              ("connect_cpu", "server CPU per connect", "≤ 1.5×"),
                              ("idle_cpu", "server CPU connected and idle", "≤ 1.3×")):
        if ratio.get(key) is not None:
            add(f"app / bare: {what}", f"{ratio[key]}×", target)
    if "alert" in app:
        a = app["alert"]
        add(f"alert → all {n:,} acknowledged (API delivery report)",
            f"{fmt(a['all_acknowledged_s'])} s; received p50 {fmt(a['p50_ms'])} / p99 "
            f"{fmt(a['p99_ms'])} / max {fmt(a['max_ms'])} ms, {a['missing']} missed", "≤ 2 s")

    def storm(label: str, s: dict[str, Any], target: str) -> None:
        pages = "; ".join(f"{p} p50 {fmt(v['p50_ms'])} / p99 {fmt(v['p99_ms'])} / max "
                          f"{fmt(v['max_ms'])} ms" for p, v in s["admin"]["pages"].items())
        add(f"{label}: all back at the new revision",
            f"{fmt(s.get('all_back_after_up_s'))} s after the server was up "
            f"({fmt(s['all_back_s'])} s after SIGTERM), "
            f"{s['missed']} missed, {s['at_revision']:,}/{n:,} at revision {s['revision']}; "
            f"{s['failed_attempts']:,} failed attempts"
            + (f" ({s['busy_refusals']:,} busy)" if s.get("busy_refusals") is not None else ""),
            target)
        add(f"{label}: admin pages meanwhile",
            f"{pages}; {s['admin']['errors']} errors", "p99 ≤ 2 s")

    if "reconnect" in app:
        storm("reconnect storm", app["reconnect"], "≤ 30 s after up, none missed")
    if "redis" in r:
        c = r["redis"]["connect"]
        add(f"2 processes + Redis: {n:,} screens connect",
            f"{fmt(c['seconds'])} s ({fmt(c['per_second'])}/s), server CPU "
            f"{' + '.join(fmt(x) for x in c['server_cpu_s'])} s; memory per connection "
            f"{' / '.join(fmt(x) for x in r['redis']['per_connection_kib'])} KiB")
        p = r["redis"]["publish"]
        add(f"2 processes + Redis: publish → all {n:,}",
            f"p50 {fmt(p['p50_ms'])} / p95 {fmt(p['p95_ms'])} / p99 {fmt(p['p99_ms'])} / max "
            f"{fmt(p['max_ms'])} ms; {reach(p)}",
            "p99 ≤ 1,000 ms (20,000 screens)")
        if "reconnect" in r["redis"]:
            storm("2 processes + Redis: storm", r["redis"]["reconnect"],
                  "≤ 45 s after up, none missed")
    lines = ["| measured | result | target |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def machine_line(m: dict[str, Any]) -> str:
    return (f"{m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, {m['os']} "
            f"(kernel {m['kernel']}), Python {m['python']}, commit {m['commit']}")


SECTION = "## Scale"
BEGIN, END = "<!-- bench/load.py: begin -->", "<!-- bench/load.py: end -->"


def markers(report: dict[str, Any]) -> tuple[str, str]:
    """A run of the redis scenario alone (20,000 screens on two processes) keeps its own table
    beside the one-process table; every other run replaces the one-process table."""
    if report.get("scenarios") == ["redis"]:
        return BEGIN.replace("load.py:", "load.py --scenarios redis:"), \
            END.replace("load.py:", "load.py --scenarios redis:")
    return BEGIN, END


def update_docs(path: Path, report: dict[str, Any], table: str) -> None:
    """Replace the generated part of the "Scale" section (adding the section if needed)."""
    begin, end = markers(report)
    block = "\n".join([
        begin,
        textwrap.fill(
            f"Measured {report['finished']} with {report['screens']:,} screens "
            f"({report['serving']}, {report['database']}, {report['client_procs']} client "
            f"processes on the same machine): {machine_line(report['machine'])}.", 96),
        "",
        "```",
        report["command"],
        "```",
        "",
        table,
        end,
    ])
    text = path.read_text() if path.exists() else "# Performance\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif begin != BEGIN and END in text:  # the redis table goes after the one-process table
        head, rest = text.split(END, 1)
        text = head + END + "\n\n" + block + rest
    elif SECTION in text:
        head, rest = text.split(SECTION, 1)
        after = rest.split("\n## ", 1)
        tail = "\n## " + after[1] if len(after) > 1 else ""
        text = head + SECTION + after[0].rstrip() + "\n\n" + block + "\n" + tail
    else:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{block}\n"
    path.write_text(text)


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/load.py", description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screens", "-n", type=int, default=1000, help="simulated screens (1000)")
    parser.add_argument("--scenarios", default="publish,alert,reconnect",
                        help=f"comma-separated, of: {', '.join(SCENARIOS)} "
                             "(default publish,alert,reconnect)")
    parser.add_argument("--no-bare", action="store_true",
                        help="skip the bare Flask-SocketIO server (run with publish by default)")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres",
                        help="postgres: a throwaway PostgreSQL server (default); sqlite: a file")
    parser.add_argument("--serve", choices=["auto", "gunicorn", "cunping"], default="auto",
                        help="gunicorn -c deploy/gunicorn.conf.py, or `cunping serve` "
                             "(auto: gunicorn when deploy/gunicorn.conf.py exists)")
    parser.add_argument("--client-procs", type=int, default=2,
                        help="worker processes for the simulated screens (2)")
    parser.add_argument("--concurrency", type=int, default=50,
                        help="first connections in flight at once, over all workers (50); "
                             "reconnects after a drop are not limited")
    parser.add_argument("--towns", type=int, default=20, help="towns in the county (20)")
    parser.add_argument("--villages", type=int, default=25, help="villages per town (25)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between all connected and reading the RSS (5)")
    parser.add_argument("--idle", type=float, default=30.0,
                        help="seconds to measure the server's CPU with everyone connected and "
                             "nothing happening (one heartbeat period: 30); 0 skips it")
    parser.add_argument("--no-redis-storm", dest="redis_storm", action="store_false",
                        help="redis: skip the restart storm across both processes")
    parser.add_argument("--bare-bytes", type=int, default=2000,
                        help="the bare server's event size when the app's was not measured")
    parser.add_argument("--out", type=Path, default=BENCH / "results",
                        help="folder for the JSON and Markdown results (bench/results)")
    parser.add_argument("--update-docs", action="store_true",
                        help="rewrite the Scale section of docs/performance.md")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md",
                        help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server in each phase (needs py-spy): collapsed stacks "
                             "in --out, the busiest application functions in the JSON")
    parser.add_argument("--profile-native", action="store_true",
                        help="--profile with C frames (shows the garbage collector's share)")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown or not wanted:
        parser.error(f"unknown scenarios: {', '.join(unknown) or '(none given)'}")
    args.wanted = wanted
    return args


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the scenarios; returns the report (also written to --out)."""
    args = parse_args(argv)
    files = raise_open_files()
    if files < args.screens + 1000:
        log(f"open-file limit {files} is low for {args.screens} screens")
    folder = Path(tempfile.mkdtemp(prefix="cunping-load-"))
    (folder / "instance").mkdir()
    gunicorn = use_gunicorn(args.serve)
    log(f"work folder {folder}; serving with {'gunicorn' if gunicorn else 'cunping serve'}, "
        f"{args.db}")
    db = Database(args.db, folder)
    env = {**os.environ, "CUNPING_INSTANCE": str(folder / "instance"), "DATABASE_URL": db.url,
           "CUNPING_ENV": "production", "SECRET_KEY": secrets.token_hex(32),
           "PYTHONUNBUFFERED": "1", "CUNPING_LOG_LEVEL": "INFO"}
    env.pop("SOCKETIO_MESSAGE_QUEUE", None)
    env.pop("REDIS_URL", None)
    bench = Run(args, folder, gunicorn, db, env)
    host = machine()  # before the run: the commit the servers were started from
    args.out.mkdir(parents=True, exist_ok=True)
    bench.profiler = Profiler(args.profile, args.out, args.profile_native)
    began = datetime.now(UTC)
    failed: BaseException | None = None
    try:
        bench.provision()
        app_wanted = [s for s in args.wanted if s in ("publish", "alert", "reconnect")]
        if app_wanted:
            bench.app_scenarios(app_wanted)
        if "publish" in args.wanted and not args.no_bare:
            bench.bare()
        if "redis" in args.wanted:
            bench.redis()
    except BaseException as exc:  # the partial report is still written, then re-raised
        failed = exc
        log(f"run failed: {type(exc).__name__}: {exc}")
    finally:
        db.stop()
    report = {
        "screens": args.screens,
        "scenarios": args.wanted,
        "serving": "gunicorn -c deploy/gunicorn.conf.py" if gunicorn else "cunping serve",
        "database": args.db,
        "client_procs": args.client_procs,
        "started": began.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": host,
        "command": "flock /tmp/cunping-heavy.lock .venv/bin/python bench/load.py "
                   + shlex.join(argv if argv is not None else sys.argv[1:]),
        "results": bench.results,
        "profiles": bench.profiler.summaries,
        "ratios": ratios(bench.results),
        "error": f"{type(failed).__name__}: {failed}" if failed else None,
        "work_folder": str(folder),
    }
    table = markdown(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"load-{began.strftime('%Y%m%d-%H%M%S')}-n{args.screens}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (args.out / f"{stem}.md").write_text(table + "\n")
    print(table)
    log(f"results: {args.out / stem}.json")
    if args.update_docs and failed is None:
        update_docs(args.docs, report, table)
        log(f"updated {args.docs}")
    if not args.keep and failed is None:
        shutil.rmtree(folder, ignore_errors=True)
    if failed is not None:
        raise failed
    return report


if __name__ == "__main__":
    run()
