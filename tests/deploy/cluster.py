"""The production deployment, for real, on free ports in a temporary folder: PostgreSQL
(tests/pg.py), redis-server, two gunicorn processes with deploy/gunicorn.conf.py, and nginx with
deploy/nginx-cunping.conf in front of them.

The nginx site is the production file itself with its ports and log paths rewritten (each
rewrite must match, so a change of the file's shape fails here instead of testing something
else); nginx runs in the foreground (`daemon off`) with a prefix of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.live import Process, cunping, free_port, wait_until
from tests.pg import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
NGINX_SITE = ROOT / "deploy" / "nginx-cunping.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def gunicorn() -> str:
    script = Path(sys.executable).parent / "gunicorn"
    return str(script) if script.exists() else "gunicorn"


def http_status(url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError:
        return 0


def render_site(text: str, upstreams: list[int], listen: int, logs: Path) -> str:
    """deploy/nginx-cunping.conf onto test ports and paths."""

    def sub(pattern: str, repl: str, source: str, count: int) -> str:
        result, n = re.subn(pattern, repl, source, flags=re.MULTILINE)
        assert n == count, f"nginx site: expected {count} match(es) of {pattern!r}, found {n}"
        return result

    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;"
                        for port in upstreams)
    text = sub(r"^    server 127\.0\.0\.1:\d+ .*;\n(?:    server 127\.0\.0\.1:\d+ .*;\n)*",
               servers + "\n", text, 1)
    text = sub(r"^    listen 80;$", f"    listen 127.0.0.1:{listen};", text, 1)
    text = sub(r"^    listen \[::\]:80;\n", "", text, 1)
    text = sub(r"^    access_log /var/log/nginx/cunping\.access\.log;$",
               f"    access_log {logs / 'access.log'};", text, 1)
    text = sub(r"^    error_log /var/log/nginx/cunping\.error\.log warn;$",
               f"    error_log {logs / 'site-error.log'} info;", text, 1)
    return text


NGINX_MAIN = """daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    access_log {prefix}/access.log;
    include {prefix}/site.conf;
}}
"""


@dataclass
class Cluster:
    """Everything of one deployment; `stop` ends what was started, in reverse."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    redis: Process | None = None
    servers: dict[str, Process] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    nginx: Process | None = None
    nginx_port: int = 0
    redis_port: int = 0

    def url(self, name: str) -> str:
        """'a', 'b' (a server process directly) or 'nginx'."""
        port = self.nginx_port if name == "nginx" else self.ports[name]
        return f"http://127.0.0.1:{port}"

    def processes(self) -> list[Process]:
        found = [self.redis, *self.servers.values(), self.nginx]
        return [p for p in found if p is not None]

    # --- commands against the deployment's database, without a server ---

    def run_cli(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([*cunping(), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"`cunping {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def run_python(self, code: str, timeout: float = 120) -> str:
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

    # --- starting ---

    @classmethod
    def create(cls, folder: Path, pg: PostgresServer, server_env: dict[str, str]) -> Cluster:
        folder.mkdir(parents=True, exist_ok=True)
        database = "scaleout_" + uuid.uuid4().hex[:10]
        import psycopg

        with psycopg.connect(pg.url("postgres").replace("+psycopg", ""), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {database}")
        cluster = cls(folder=folder)
        cluster.nginx_port = free_port()
        cluster.redis_port = redis_port = free_port()
        cluster.env = {
            **os.environ,
            "CUNPING_ENV": "production",
            "SECRET_KEY": "scaleout-" + uuid.uuid4().hex * 2,
            "DATABASE_URL": pg.url(database),
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{redis_port}/1",
            "CUNPING_INSTANCE": str(folder / "instance"),  # shared: uploaded pictures
            "PUBLIC_BASE_URL": cluster.url("nginx"),
            "CUNPING_PROXY_COUNT": "1",
            "PYTHONUNBUFFERED": "1",
            **server_env,
        }
        return cluster

    def migrate(self) -> str:
        """The deployment's migration step, once, before any server process starts."""
        return self.run_cli("db", "upgrade")

    def start_redis(self) -> None:
        port = self.redis_port
        data = self.folder / "redis"
        data.mkdir(exist_ok=True)
        self.redis = Process(
            args=[REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                  "--save", "", "--appendonly", "no", "--daemonize", "no"],
            env=dict(os.environ), log=self.folder / "redis.log")
        self.redis.start()
        redis_process = self.redis

        def ready() -> bool:
            if not redis_process.running():
                raise RuntimeError(f"redis-server exited:\n{redis_process.log_tail()}")
            import redis

            try:
                return bool(redis.Redis(port=port, socket_timeout=2).ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_until(ready, 30, interval=0.1, what="redis-server answering PING")

    def start_server(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        port = free_port()
        self.ports[name] = port
        env = {**self.env, "CUNPING_PORT": str(port), "CUNPING_HOST": "127.0.0.1",
               "CUNPING_WORKER_CONNECTIONS": "1000", **(extra_env or {})}
        process = Process(args=[gunicorn(), "-c", str(GUNICORN_CONF)], env=env,
                          log=self.folder / f"server-{name}.log")
        self.servers[name] = process
        process.start()
        self._wait_healthy(process, self.url(name), f"server {name}")

    def start_nginx(self) -> None:
        prefix = self.folder / "nginx"
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        site = render_site(NGINX_SITE.read_text(), [self.ports["a"], self.ports["b"]],
                           self.nginx_port, prefix)
        (prefix / "site.conf").write_text(site)
        # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's folders.
        user = "user root root;" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(NGINX_MAIN.format(prefix=prefix, user=user))
        args = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                "-e", str(prefix / "error.log")]
        check = subprocess.run([*args, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, f"nginx -t refused the site:\n{check.stderr}\n{site}"
        self.nginx = Process(args=args, env=dict(os.environ), log=self.folder / "nginx.log")
        self.nginx.start()
        self._wait_healthy(self.nginx, self.url("nginx"), "nginx")

    @staticmethod
    def _wait_healthy(process: Process, base: str, what: str) -> None:
        def healthy() -> bool:
            if not process.running():
                raise RuntimeError(f"{what} exited:\n{process.log_tail()}")
            return http_status(base + "/healthz") == 200

        wait_until(healthy, 90, interval=0.25, what=f"{what} /healthz")

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()

    def logs(self) -> list[Path]:
        found = [p.log for p in self.processes()]
        prefix = self.folder / "nginx"
        found += [prefix / "error.log", prefix / "site-error.log"]
        return [p for p in found if p.exists()]
