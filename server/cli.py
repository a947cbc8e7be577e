"""The `cunping` command: serve, demo, create-admin, tick, and `db` (Flask-Migrate)."""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from server.config import DEFAULT_BASE_URL


def init_app(app: Flask) -> None:
    app.cli.add_command(serve)
    app.cli.add_command(demo)
    app.cli.add_command(create_admin)
    app.cli.add_command(screen)
    app.cli.add_command(alert_key)
    from server.services import digest

    digest.init_app(app)  # `cunping digest`


def _upgrade() -> None:
    from flask_migrate import upgrade

    upgrade()


@click.command("serve")
@click.option("--host", default=lambda: os.environ.get("CUNPING_HOST", "127.0.0.1"))
@click.option("--port", default=lambda: int(os.environ.get("CUNPING_PORT", "5000")), type=int)
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database first.")
@with_appcontext
def serve(host: str, port: int, no_migrate: bool) -> None:
    """Run the server (gevent, with the screens' WebSocket channel) and the scheduler. For
    production see deploy/."""
    from server import collector, logs, scheduler
    from server.extensions import socketio

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not no_migrate:
        _upgrade()
    # After the migration (Alembic configures logging its own way): CUNPING_LOG_LEVEL and
    # CUNPING_LOG_FORMAT (text or json) to stderr, see server/logs.py.
    logs.configure()
    scheduler.start(app, interval=scheduler.seconds())
    from server.realtime.state import state

    state(app).start()  # alert dispatcher, heartbeat writer, directory, handshake gate
    # What was set up lives as long as the process: frozen; full collections at a fixed rate.
    collector.settle()
    collector.start()
    click.echo(f"Cunping is serving on http://{host}:{port}/  (admin: http://{host}:{port}/admin/)")
    if socketio.server.eio.async_mode != "gevent":
        socketio.run(app, host=host, port=port, log_output=False, allow_unsafe_werkzeug=False)
        return
    # Under gevent (server/__main__.py patches first): gevent's WSGI server (WebSocket support
    # from simple-websocket, as Flask-SocketIO would run it), with TCP_NODELAY on every
    # connection as gunicorn sets it — without it a small write on a kept-alive connection
    # waits ~40 ms for the peer's delayed ACK (Nagle).
    _NoDelayServer((host, port), app, log=None).serve_forever()


def _nodelay_server() -> type:
    import socket

    from gevent import pywsgi

    class NoDelayServer(pywsgi.WSGIServer):
        def handle(self, sock: socket.socket, address: Any) -> None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    return NoDelayServer


def _NoDelayServer(*args: Any, **kwargs: Any) -> Any:
    return _nodelay_server()(*args, **kwargs)


@click.command("demo")
@click.option("--serve", "then_serve", is_flag=True, help="Start the server afterwards.")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--player/--no-player", default=True,
              help="With --serve: also start a demo screen's player (a window where there is a "
                   "display, PNG frames in the instance folder otherwise).")
@click.pass_context
@with_appcontext
def demo(ctx: click.Context, then_serve: bool, host: str, port: int, player: bool) -> None:
    """Create the database and fill it with a demo county (once); print the logins."""
    from server import demo as demo_data

    if current_app.config.get("ENV") == "production":
        raise click.ClickException(
            "cunping demo makes accounts whose password is printed in the README: it does not "
            "run with CUNPING_ENV=production. Use `cunping create-admin` on a production "
            "instance.")

    _upgrade()
    created = demo_data.load()
    _demo_alert_key()
    base = f"http://{host}:{port}"
    if not os.environ.get("PUBLIC_BASE_URL"):
        current_app.config["PUBLIC_BASE_URL"] = base  # QR codes point at this demo server
    click.echo("Demo county ready." if created else "Demo data already present.")
    click.echo(f"\n  Admin:  {base}/admin/   (every password: {demo_data.PASSWORD})")
    for username, description in demo_data.LOGINS:
        click.echo(f"    {username:<16} {description}")
    codes = demo_data.sample_codes()
    if codes:
        click.echo(f"\n  A notice as residents see it: {base}/n/{codes[0]}")
    if then_serve:
        if player:
            _start_demo_player(base)
        ctx.invoke(serve, host=host, port=port, no_migrate=True)


def _demo_alert_key() -> None:
    """The demo county signs its alerts too (docs/alerts.md): a key made once, used at once."""
    from server.realtime.state import state
    from server.services import alert_keys

    path = alert_keys.key_path(current_app)
    if path.exists():
        return
    alert_keys.create(path)
    current_app.extensions.pop(alert_keys.EXTENSION, None)
    state(current_app).dispatcher.signer = alert_keys.signer_for(current_app)
    click.echo(f"Alert key made: {path} (every alert set is signed with it).")


def _start_demo_player(base: str) -> None:
    """Start `cunping player` for the demo screen next to the server; it stops with us."""
    import atexit
    import subprocess

    from server import demo as demo_data

    folder = os.path.join(current_app.instance_path, "demo-player")
    token = demo_data.demo_screen_token(folder)
    windowed = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    args = [sys.executable, "-m", "server", "player", "--server", base, "--token", token,
            "--data-dir", folder, "--size", "1280x720"]
    if windowed:
        args += ["--display", "pygame", "--windowed"]
        where = "in a window"
    else:
        frames = os.path.join(folder, "frames")
        args += ["--display", "headless", "--frames-dir", frames]
        where = f"headless: the screen's frames are PNG files in {frames} (current.png)"
    from server.services import alert_keys

    env = dict(os.environ)
    signer = alert_keys.signer_for(current_app)
    if signer is not None:  # the demo screen shows only alerts the demo county signed
        env["CUNPING_PLAYER_ALERT_KEYS"] = ",".join(signer.announce)
    try:
        child = subprocess.Popen(args, env=env)
    except OSError as exc:  # the demo server is still useful without its screen
        click.echo(f"  The demo screen's player did not start: {exc}", err=True)
        return
    atexit.register(child.terminate)
    click.echo(f"\n  Demo screen 前王庄村广场屏: a player runs {where}")


@click.command("create-admin")
@click.argument("username")
@click.option("--region", "region_code", help="Code of an existing root region.")
@click.option("--county-code", help="Create the root region with this code (first setup).")
@click.option("--county-name", help="…and this name, e.g. 河东区.")
@click.option("--password", envvar="CUNPING_ADMIN_PASSWORD", help="Or set CUNPING_ADMIN_PASSWORD.")
@with_appcontext
def create_admin(
    username: str,
    region_code: str | None,
    county_code: str | None,
    county_name: str | None,
    password: str | None,
) -> None:
    """Create a system administrator (and, on first setup, the county region)."""
    from server.models import Role
    from server.services import regions, users
    from server.services.errors import ServiceError

    _upgrade()  # the first setup may come before the first `serve`
    try:
        if county_code:
            region = regions.create(None, county_code, county_name or county_code)
        elif region_code:
            region = regions.get(region_code)
        else:
            roots = regions.roots()
            if len(roots) != 1:
                raise click.UsageError("Give --region CODE, or --county-code and --county-name.")
            region = roots[0]
        if region.parent_id is not None:
            raise click.UsageError("A system administrator is granted on a root region.")
        if not password:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        user = users.create(
            None, username, password, display_name=username, grants=[(Role.ADMIN, region)]
        )
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created administrator {user.username} for {region.name} ({region.code}).")


@click.group("screen")
def screen() -> None:
    """Screens: add one (prints its token), list them, revoke one."""


def _parse_size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in value.lower().replace("×", "x").split("x"))
    except ValueError:
        raise click.BadParameter("use WIDTHxHEIGHT, e.g. 1920x1080") from None
    return width, height


@screen.command("add")
@click.option("--region", "region_code", required=True, help="Code of the region (a village).")
@click.option("--name", required=True, help="Where the screen stands, e.g. 村委会门口.")
@click.option("--size", default="1920x1080", show_default=True, help="Resolution WIDTHxHEIGHT.")
@click.option("--server", "server_url", default=None,
              help="The address the box reaches this server at (default: PUBLIC_BASE_URL).")
@with_appcontext
def screen_add(region_code: str, name: str, size: str, server_url: str | None) -> None:
    """Provision a screen; print its token and a config snippet for its player (once)."""
    from server.services import regions
    from server.services import screens as screen_service
    from server.services.errors import ServiceError

    width, height = _parse_size(size)
    try:
        region = regions.get(region_code)
        new, token = screen_service.provision(None, region, name, width, height)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Screen {new.code} “{new.name}” in {region.full_name} ({width}x{height}).")
    click.echo("Its token is shown only now. Player config (player.toml):\n")
    configured = server_url or os.environ.get("PUBLIC_BASE_URL") or (
        current_app.config["PUBLIC_BASE_URL"] if current_app.config["PUBLIC_BASE_URL"]
        != DEFAULT_BASE_URL else None)
    if configured:
        click.echo(f'server = "{configured.rstrip("/")}"')
    else:  # a box cannot reach "localhost": say what to put there instead of printing it
        click.echo('server = "http://SERVER-ADDRESS:5000"  # the address the box reaches '
                   "this server at (set PUBLIC_BASE_URL or --server to print it)")
    click.echo(f'token = "{token}"')
    from server.services import alert_keys

    signer = alert_keys.signer_for(current_app)
    if signer is not None:  # the county's alert keys: the player shows only what they signed
        keys = ", ".join(f'"{k}"' for k in signer.announce)
        click.echo(f"alert_keys = [{keys}]")


@screen.command("list")
@with_appcontext
def screen_list() -> None:
    """Every screen: code, state, region, name, last seen."""
    from server.services import screens as screen_service

    rows = screen_service.list_all()
    if not rows:
        click.echo("No screens yet: `cunping screen add --region CODE --name NAME`.")
    for s in rows:
        if s.revoked_at is not None:
            state = "revoked"
        else:
            state = "online" if screen_service.is_online(s) else "offline"
        seen = s.last_seen_at.isoformat(timespec="seconds") + "Z" if s.last_seen_at else "never"
        click.echo(
            f"{s.code}  {state:<8} {s.region.code:<12} {s.width}x{s.height:<5} "
            f"seen {seen}  {s.name}"
        )


@screen.command("revoke")
@click.argument("code")
@with_appcontext
def screen_revoke(code: str) -> None:
    """Revoke a screen's token; a connected player is told and disconnected."""
    from server.services import screens as screen_service
    from server.services.errors import ServiceError

    try:
        target = screen_service.get(code)
        screen_service.revoke(None, target, "cli")
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Revoked screen {target.code} “{target.name}”.")


@click.group("alert-key")
def alert_key() -> None:
    """The county alert key that signs every alert set (docs/alerts.md, "Signed alerts")."""


def _print_public(key: Any) -> None:
    from player import protocol
    from server.services import alert_keys

    public = alert_keys.public_text(key.public_key())
    click.echo(f"key id {protocol.key_id(base64.b64decode(public))}")
    click.echo("For each player (player.toml; players paired from now on get it by pairing):")
    click.echo(f'alert_keys = ["{public}"]')


@alert_key.command("create")
@click.option("--replace", is_flag=True, help="Overwrite the key file (see \"Rotating the key\").")
@with_appcontext
def alert_key_create(replace: bool) -> None:
    """Make the key file (readable by this user only) and print its public key."""
    from server.services import alert_keys

    path = alert_keys.key_path(current_app)
    try:
        key = alert_keys.create(path, replace=replace)
    except alert_keys.AlertKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Alert key written to {path} (mode 600). Restart the server to sign with it.")
    _print_public(key)


@alert_key.command("show")
@with_appcontext
def alert_key_show() -> None:
    """Print the public key of the key file."""
    from server.services import alert_keys

    path = alert_keys.key_path(current_app)
    try:
        key = alert_keys.load(path)
    except alert_keys.AlertKeyError as exc:
        raise click.ClickException(str(exc)) from None
    if key is None:
        raise click.ClickException(f"no alert key at {path}: cunping alert-key create")
    _print_public(key)


def _make_app() -> Flask:
    from server import create_app

    try:
        return create_app()
    except RuntimeError as exc:  # a configuration problem: say it plainly, no traceback
        raise click.ClickException(str(exc)) from None


cli = FlaskGroup(
    create_app=_make_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    help="村屏 Cunping: one screen, one code.",
)


def main() -> None:
    cli.main(args=sys.argv[1:], prog_name="cunping")
