"""The container deployment for real: deploy/docker-compose.yml brought up with Docker (the
base image built with debootstrap if missing, then `compose build` and `compose up -d`), its
first administrator and a screen made with the `cunping` command inside the containers, a
notice published through nginx, and a real headless player on the host, connected through
nginx, showing it; every service healthy, PostgreSQL not root and its cluster kept across a
restart. `compose down -v` at the end, whatever happened.

Runs only with CUNPING_TEST_DOCKER=1 (scripts/test sets it where a Docker daemon runs or can be
started; docker-marked tests are deselected otherwise, with the reason printed). Every port is
a free one on 127.0.0.1, the project name is the test's own, and deploy/.env is not read: a
deployment on the same machine is left alone.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.cluster import http_status
from tests.e2e.test_screen_e2e import Api
from tests.live import LivePlayer, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        os.environ.get("CUNPING_TEST_DOCKER") != "1",
        reason="needs Docker: CUNPING_TEST_DOCKER=1 (scripts/test sets it where a Docker "
               "daemon runs or can be started)",
    ),
]

# Building and starting: generous for a cold machine of two cores, far below "never".
BUILD_TIMEOUT = 1200
UP_TIMEOUT = 300
SHOWN = 60.0

SETUP = """
from server.models import Region, Role
from server.services import users
county = Region.query.filter_by(code="D0").one()
editor = users.create(None, "d_editor", "compose-password", grants=[(Role.EDITOR, county)])
reviewer = users.create(None, "d_reviewer", "compose-password", grants=[(Role.REVIEWER, county)])
import json
print(json.dumps({"editor": users.create_token(editor, "compose")[1],
                  "reviewer": users.create_token(reviewer, "compose")[1]}))
"""


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) where the plugin is installed, else docker-compose v1."""
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if done.returncode == 0:
        return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    assert legacy, "neither `docker compose` nor docker-compose is installed"
    return [legacy]


class Stack:
    """One compose project of deploy/docker-compose.yml, on free ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.project = "cunping-test-" + secrets.token_hex(4)
        self.ports = {name: free_port() for name in
                      ("POSTGRES_PORT", "REDIS_PORT", "APP1_PORT", "APP2_PORT", "NGINX_PORT")}
        empty = folder / "empty.env"  # deploy/.env, if a deployment here has one, is not read
        empty.write_text("")
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
        self.env = {
            **os.environ,
            **{name: str(port) for name, port in self.ports.items()},
            "SECRET_KEY": secrets.token_hex(32),
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "PUBLIC_BASE_URL": self.url,
            "HEALTH_INTERVAL": "1s",
            "CUNPING_NOFILE": str(nofile),
            "CUNPING_WORKER_CONNECTIONS": str(max(1000, nofile - 1024)),
            "CUNPING_LOG_FORMAT": "text",
        }
        self.base = [*compose_command(), "--project-name", self.project,
                     "--env-file", str(empty), "--file", str(DEPLOY / "docker-compose.yml")]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['NGINX_PORT']}"

    def run(self, *args: str, timeout: float = 300, stdin: str | None = None,
            env: dict[str, str] | None = None) -> str:
        done = subprocess.run([*self.base, *args], env={**self.env, **(env or {})},
                              input=stdin, capture_output=True, text=True, timeout=timeout,
                              cwd=DEPLOY)
        if done.returncode != 0:
            raise RuntimeError(f"compose {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}\n{done.stderr}")
        return done.stdout

    def health(self) -> dict[str, str]:
        """Each running container's state as `docker ps` says it ("Up 5 seconds (healthy)")."""
        done = subprocess.run(
            ["docker", "ps", "--filter", f"label=com.docker.compose.project={self.project}",
             "--format", "{{.Label \"com.docker.compose.service\"}}\t{{.Status}}"],
            capture_output=True, text=True, timeout=60, check=True)
        return dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)

    def logs(self) -> str:
        done = subprocess.run([*self.base, "logs", "--no-color", "--tail", "80"], env=self.env,
                              capture_output=True, text=True, timeout=120, cwd=DEPLOY)
        return done.stdout + done.stderr


def prepare_images() -> None:
    """The local base image (skipped when it exists), then the wheelhouse: the same steps as
    deploy/README.md, so the images build without a registry and without PyPI in the build."""
    for script in ("build-base", "fetch-wheels"):
        done = subprocess.run([str(DEPLOY / "docker" / script)], capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT)
        assert done.returncode == 0, f"deploy/docker/{script} failed:\n{done.stderr[-4000:]}"


def remove_stale_stacks() -> None:
    """Containers and volumes of an earlier run that never got to `compose down` (a killed
    pytest): their services restart with the daemon and would hold ports on this machine."""
    def ids(*args: str) -> list[str]:
        done = subprocess.run(["docker", *args, "--filter", "name=cunping-test-"],
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.split()

    containers = ids("ps", "-aq")
    if containers:
        subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, timeout=120,
                       check=True)
    volumes = ids("volume", "ls", "-q")
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True,
                       timeout=120, check=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    remove_stale_stacks()
    prepare_images()
    stack = Stack(tmp_path_factory.mktemp("compose"))
    try:
        stack.run("build", timeout=BUILD_TIMEOUT)
        stack.run("up", "-d", timeout=UP_TIMEOUT)
        # Up means the whole chain came up: postgres healthy, migrate done, both processes
        # healthy, nginx started after them. Through nginx is how everyone comes in.
        wait_until(lambda: http_status(stack.url + "/healthz") == 200, UP_TIMEOUT,
                   interval=0.5, what="/healthz through nginx")
        yield stack
    except BaseException:
        print(f"\n--- compose logs ({stack.project}) ---\n{stack.logs()}")
        raise
    finally:
        stack.run("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300)


@pytest.fixture
def player(tmp_path: Path) -> Iterator[list[LivePlayer]]:
    started: list[LivePlayer] = []
    yield started
    for one in started:
        one.stop()


def shows(player: LivePlayer, what: str) -> bool:
    return any(frame.get("showing") == what for frame in player.frames_log())


def test_a_notice_published_through_nginx_reaches_a_player_through_nginx(
    stack: Stack, player: list[LivePlayer], tmp_path: Path,
) -> None:
    # The first administrator and the county, as deploy/README.md says to make them.
    out = stack.run("run", "--rm", "-e", "CUNPING_ADMIN_PASSWORD=compose-password", "migrate",
                    "cunping", "create-admin", "d_admin", "--county-code", "D0",
                    "--county-name", "容器县")
    assert "Created administrator d_admin" in out
    out = stack.run("exec", "-T", "app1", "cunping", "screen", "add", "--region", "D0",
                    "--name", "容器屏", "--size", "640x360")
    token = next(line.split('"')[1] for line in out.splitlines() if line.startswith("token ="))
    # An editor and a reviewer with API tokens (no command for that: the services, in app2).
    tokens: dict[str, Any] = json.loads(
        stack.run("exec", "-T", "app2", "python", "-c",
                  "from server import create_app\napp = create_app()\n"
                  "with app.app_context():\n"
                  + "\n".join("    " + line for line in SETUP.strip().splitlines())
                  ).strip().splitlines()[-1])

    screen = LivePlayer.create(tmp_path / "player", stack.url, token, size="640x360")
    player.append(screen)
    screen.start()
    wait_until(lambda: shows(screen, "standby"), SHOWN, interval=0.2,
               what="the player through nginx showing its standby slide")

    editor, reviewer = Api(stack.url, tokens["editor"]), Api(stack.url, tokens["reviewer"])
    notice = editor.call("POST", "/notices", {
        "title": "容器部署通知", "body": "请村民相互转告。", "category": "notice",
        "targets": ["D0"], "duration_s": 5})
    editor.call("POST", f"/notices/{notice['id']}/submit", {})
    reviewer.call("POST", f"/notices/{notice['id']}/approve", {})
    published = editor.call("POST", f"/notices/{notice['id']}/publish", {})
    assert published["status"] == "published"
    wait_until(lambda: shows(screen, published["code"]), SHOWN, interval=0.2,
               what="the notice on the player")
    assert list(screen.frames.glob("*.png")), "the player drew no frame"


def test_the_stack_is_the_production_arrangement(stack: Stack) -> None:
    """PostgreSQL behind it, /metrics closed at nginx and open on a process's own port, the
    database server not running as root, the migration run once and finished."""
    with urllib.request.urlopen(stack.url + "/healthz", timeout=10) as resp:
        assert json.loads(resp.read())["database"] == "postgresql"
    assert http_status(stack.url + "/metrics") == 404
    assert http_status(f"http://127.0.0.1:{stack.ports['APP1_PORT']}/metrics") == 200
    assert http_status(f"http://127.0.0.1:{stack.ports['APP2_PORT']}/healthz") == 200
    assert stack.run("exec", "-T", "postgres", "id", "-u").strip() != "0"
    migrate = stack.run("ps", "-a", "migrate")
    assert "Exit 0" in migrate or "exited (0)" in migrate.lower(), migrate
    # Every long-running service passes its own health check, nginx's through to a process.
    wait_until(lambda: set(stack.health()) == {"postgres", "redis", "app1", "app2", "nginx"}
               and all("(healthy)" in s for s in stack.health().values()), 60, interval=0.5,
               what="every service healthy")


def test_postgres_restarted_keeps_its_cluster_and_the_site_recovers(stack: Stack) -> None:
    """The second start of the PostgreSQL container finds its cluster in the volume (no second
    initdb); the processes reconnect and the site answers again through nginx."""
    before = stack.run("exec", "-T", "app1", "cunping", "db", "current")
    assert "(head)" in before
    stack.run("restart", "postgres", timeout=120)
    wait_until(lambda: "(healthy)" in stack.health().get("postgres", ""), 60, interval=0.5,
               what="postgres healthy again")
    log = stack.run("logs", "--no-color", "postgres")
    assert log.count("creating the cluster") == 1, log
    wait_until(lambda: http_status(stack.url + "/healthz") == 200, 60, interval=0.5,
               what="/healthz through nginx after PostgreSQL's restart")
    assert stack.run("exec", "-T", "app1", "cunping", "db", "current") == before
