"""A throwaway PostgreSQL server for the tests, from Debian's packages.

PostgreSQL refuses to run as root, so as root the data folder is handed to the `postgres`
system user and the server runs as that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def _bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install Debian's 'postgresql' package "
        "(or run the tests with CUNPING_TEST_DATABASES=sqlite)."
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bindir: Path
    as_user: list[str]
    template: str = ""

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = _bindir()
        folder = Path(tempfile.mkdtemp(prefix="cunping-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres", "postgres")
        data = folder / "data"
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        subprocess.run(
            [
                *as_user,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-w",
                "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        server = cls(folder=folder, port=port, bindir=bindir, as_user=as_user)
        server._make_template()
        return server

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _psql(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres").replace("+psycopg", ""), autocommit=True) as c:
            c.execute(sql)

    def _make_template(self) -> None:
        """Migrate one database to head; every test clones it (CREATE DATABASE ... TEMPLATE)."""
        from flask_migrate import upgrade

        from server import create_app
        from server.extensions import db

        self.template = "cunping_template"
        self._psql(f"CREATE DATABASE {self.template}")
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "t" * 32,
                "INSTANCE_PATH": str(Path(tempfile.mkdtemp()) / "instance"),
                "SQLALCHEMY_DATABASE_URI": self.url(self.template),
            }
        )
        with app.app_context():
            upgrade()
            db.engine.dispose()

    def fresh_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        for _attempt in range(20):
            try:
                self._psql(f"CREATE DATABASE {name} TEMPLATE {self.template}")
                break
            except Exception as exc:  # the template is briefly busy right after use
                if "being accessed" not in str(exc):
                    raise
                time.sleep(0.1)
        return self.url(name)

    # --- faults, for tests of what the server does without its database ---

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, …)."""
        head = (self.folder / "data" / "postmaster.pid").read_text().split("\n", 1)[0]
        postmaster = int(head)
        children = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            if int(fields[1]) == postmaster:
                children.append(int(Path(stat).parent.name))
        return [postmaster, *children]

    def freeze(self) -> list[int]:
        """SIGSTOP the whole server: it accepts TCP connections (the kernel does) and answers
        nothing. Returns the processes stopped, for `thaw`."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw(self, pids: list[int]) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                continue

    def halt(self) -> None:
        """Shut the server down (fast: connections are closed), keeping its data."""
        self._pg_ctl("-m", "fast", "stop")

    def restart(self) -> None:
        """Start a halted server again on the same port."""
        self._pg_ctl("-l", str(self.folder / "log"), "-o", self._options(), "start")

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D",
                        str(self.folder / "data"), "-w", *args], check=True,
                       capture_output=True)

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)
