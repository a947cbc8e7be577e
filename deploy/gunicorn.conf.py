"""gunicorn settings for one Cunping server process: `gunicorn -c deploy/gunicorn.conf.py
server.wsgi:app`. Everything is set by environment variables, so the same file serves every
process (systemd's cunping@PORT.service, docker-compose, the tests, bench/):

  CUNPING_BIND                 address to listen on (default CUNPING_HOST:CUNPING_PORT,
                               127.0.0.1:5000); several, comma-separated, are allowed
  CUNPING_WORKER_CONNECTIONS   connections this process holds at once (default 20000): each
                               screen keeps one WebSocket open all day
  CUNPING_BACKLOG              listen backlog (default 4096): a reconnect storm of 10,000 screens
  CUNPING_TIMEOUT              seconds a silent worker is given before it is restarted (60)
  CUNPING_KEEPALIVE            seconds an idle keep-alive HTTP connection stays open (75, longer
                               than nginx's upstream keepalive_timeout of 60 s)
  CUNPING_LOG_LEVEL            INFO by default; CUNPING_LOG_FORMAT=json for structured logs
                               (server/logs.py); CUNPING_ACCESS_LOG=1 adds gunicorn's own
                               access log
  CUNPING_SCHEDULER            0 leaves the scheduler out of this process (see server/wsgi.py)

Exactly one worker, of the gevent class: Flask-SocketIO keeps every connection's state in the
process that accepted it, so a process must not share its port among several workers. Scale by
starting more processes (one per core) behind nginx with ip_hash and the Redis message queue
(deploy/README.md, "Production: several processes").

The database is migrated before the processes start (deploy/cunping-migrate.service), never here.
"""

from __future__ import annotations

import os
import resource
from typing import Any


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _bind() -> list[str]:
    explicit = os.environ.get("CUNPING_BIND", "").strip()
    if explicit:
        return [part.strip() for part in explicit.split(",") if part.strip()]
    host = os.environ.get("CUNPING_HOST", "127.0.0.1")
    port = _env_int("CUNPING_PORT", 5000)
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]


wsgi_app = "server.wsgi:app"
bind = _bind()
workers = 1  # never more: see the module docstring
worker_class = "gevent"
worker_connections = _env_int("CUNPING_WORKER_CONNECTIONS", 20000)
backlog = _env_int("CUNPING_BACKLOG", 4096)
# The gevent worker tells the arbiter it is alive from its own greenlet, so a long-lived
# WebSocket never trips this; it catches a worker whose event loop is blocked.
timeout = _env_int("CUNPING_TIMEOUT", 60)
# A stop waits this long for requests in flight. WebSockets never end by themselves, so every
# second here is a second all screens are off the server on a restart: short.
graceful_timeout = _env_int("CUNPING_GRACEFUL_TIMEOUT", 5)
keepalive = _env_int("CUNPING_KEEPALIVE", 75)
# The app is imported in the worker, after gevent has patched the standard library.
preload_app = False
# Socket.IO long-polling requests and uploads are bounded by the app (CUNPING_MAX_REQUEST_MB);
# the request line and headers by these (gunicorn's defaults, stated).
limit_request_line = 4094
limit_request_fields = 100

# gunicorn 24+ opens a control socket, by default one path per user: several processes would
# fight over it. Off, unless CUNPING_CONTROL_SOCKET names a path for this process.
if os.environ.get("CUNPING_CONTROL_SOCKET"):
    control_socket = os.environ["CUNPING_CONTROL_SOCKET"]
else:
    control_socket_disable = True

proc_name = "cunping-" + bind[0].rsplit(":", 1)[-1]
errorlog = "-"  # stderr: journald or the container's log
accesslog = "-" if os.environ.get("CUNPING_ACCESS_LOG", "") == "1" else None
loglevel = os.environ.get("CUNPING_LOG_LEVEL", "INFO").lower()
capture_output = False

# Connections a process may hold are bounded by its open-file limit: a WebSocket is a file.
WANTED_FILES = worker_connections + 1024


def raise_open_files(wanted: int = WANTED_FILES) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit, which only
    root or systemd's LimitNOFILE= can raise). Returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def on_starting(server: Any) -> None:
    soft, _hard = raise_open_files()
    if soft != resource.RLIM_INFINITY and soft < WANTED_FILES:
        server.log.warning(
            "open-file limit %d is below the %d this process may need for %d connections: "
            "raise LimitNOFILE= (systemd) or ulimit -n", soft, WANTED_FILES, worker_connections)


def post_fork(server: Any, worker: Any) -> None:
    """The application's log lines (CUNPING_LOG_LEVEL, CUNPING_LOG_FORMAT=json) to stderr, like
    gunicorn's own; set before the app is imported, so its start-up lines are kept."""
    from server import logs

    logs.configure()


def post_worker_init(worker: Any) -> None:
    """The app is loaded (worker.wsgi): start its background loops (the realtime layer's, the
    scheduler, full garbage collections at a fixed rate: server/collector.py)."""
    from server.wsgi import start_background

    start_background(worker.wsgi)
