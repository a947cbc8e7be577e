"""Security headers on every kind of response (server/headers.py): the admin's pages, the
API's JSON, the residents' pages (their stricter policy kept), error pages and static files."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, World
from tests.test_api_alerts import auth_for
from tests.test_public import publish


def check(response, status: int = 200, *, script: str = "'self'") -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.request.path, response.status_code)
    csp = response.headers["Content-Security-Policy"]
    assert f"script-src {script}" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_every_kind_of_answer_refuses_framing_and_inline_script(
    app: Flask, client: FlaskClient, auth: AuthActions, world: World
) -> None:
    @app.get("/admin/_boom")
    def _boom() -> str:  # an unexpected error: the 500 page
        raise RuntimeError("boom")

    check(client.get("/admin/login"))
    check(client.post("/admin/login", data={"username": "admin"}), 400)  # no CSRF token: 400
    auth.login("admin")
    check(client.get("/admin/"))
    check(client.get("/admin/account"))
    static = client.get("/admin/static/admin.css")
    check(static)
    static.close()
    check(client.get("/admin/no-such-page"), 404)  # 404 page
    check(client.get("/admin/logout"), 405)  # 405
    check(client.get("/admin/_boom"), 500)  # 500 page
    check(client.get("/api/v1/me", headers=auth_for(world.admin)))
    check(client.get("/api/v1/me"), 401)
    check(client.get("/api/v1/notices/999999", headers=auth_for(world.admin)), 404)
    check(client.get("/api/v1/openapi.json"))
    check(client.get("/healthz"))
    # The residents' pages: their stricter policy (no script at all), the rest the same.
    notice = publish(world)
    check(client.get(f"/n/{notice.code}"), script="'none'")
    check(client.get(f"/n/{notice.code}/qr.svg"), script="'none'")
    check(client.get("/"), script="'none'")
    check(client.get("/n/nope"), 404, script="'none'")
    static = client.get("/p/static/public.css")
    check(static, script="'none'")
    static.close()


def test_no_admin_template_has_inline_script_or_handlers() -> None:
    """What the policy forbids is not in the templates: no <script> without src, no on*=."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    INLINE = re.compile(r"""<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=\s*["']""")
    bad = []
    templates = [*root.glob("admin/templates/**/*.html"),
                 *root.glob("server/**/templates/**/*.html")]
    for path in templates:
        text = path.read_text()
        for match in INLINE.finditer(text):
            bad.append(f"{path.relative_to(root)}: {match.group(0)}")
    assert bad == []


def test_nginx_answers_for_itself_with_the_same_policy() -> None:
    """deploy/nginx-cunping.conf sends the admin's policy on its own answers (404s, 502s): the
    same text as server/headers.py's, so that changing one without the other fails here."""
    import re
    from pathlib import Path

    from server.headers import POLICY

    conf = (Path(__file__).resolve().parent.parent / "deploy/nginx-cunping.conf").read_text()
    block = re.search(r"map \$upstream_http_content_security_policy \$cunping_csp \{(.*?)\}",
                      conf, re.S)
    assert block is not None
    assert re.search(r"''\s+\"([^\"]*)\";", block.group(1)).group(1) == POLICY  # type: ignore[union-attr]
    assert "add_header Content-Security-Policy $cunping_csp always;" in conf
