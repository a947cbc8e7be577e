"""Security headers on every response (docs/security.md): nothing is framed, nothing sniffed,
no script but this site's own files, no referrer sent elsewhere.

A few lines here rather than flask-talisman: the app sets four headers, HTTPS redirects and
HSTS are nginx's (deploy/nginx-cunping.conf), and the residents' pages keep their stricter
policy (no script at all, server/public/views.py) — a blueprint's header is left as it is.
"""

from __future__ import annotations

from flask import Flask, Response

# The admin and the API: scripts and styles from this site (style attributes are used for
# colours and indentation), images from here or data: URLs (QR codes, charts), the dashboard's
# Socket.IO connection to this site.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
          "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def init_app(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        return response
