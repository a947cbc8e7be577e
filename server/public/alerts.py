"""An emergency alert's page for residents (/a/<code>): the page behind the QR code on the
alert screen. Large type in the level's colour, times in local time, and when the alert has
ended it says so plainly (lifted or expired) rather than showing it as if in force. A pending
or rejected alert was never public: it is not found, like an unknown code.

No JavaScript, like /n/<code>; its QR code at /a/<code>/qr.png.
"""

from __future__ import annotations

import re

from flask import abort, current_app, render_template, request
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from player import protocol
from server.labels import EVENT_ALERT_NAMES, LEVEL_LABELS
from server.models import Alert, AlertStatus
from server.models.base import utcnow
from server.public import bp
from server.public.views import QR_SCALE_DEFAULT, QR_SCALE_MAX
from server.services import alerts, qr
from server.services.errors import NotFound

CODE_RE = re.compile(r"^[A-Za-z0-9]{1,12}$")
PUBLIC = (AlertStatus.ACTIVE, AlertStatus.CANCELLED, AlertStatus.EXPIRED)


def _public_alert(code: str) -> Alert | None:
    if not CODE_RE.match(code or ""):
        return None
    try:
        alert = alerts.get(code)
    except NotFound:
        return None
    return alert if alert.status in PUBLIC else None


def public_state(alert: Alert) -> str:
    """in_force, upcoming, lifted (cancelled) or expired, as of now."""
    now = utcnow()
    if alert.status == AlertStatus.CANCELLED:
        return "lifted"
    if alert.status == AlertStatus.EXPIRED or alert.expires_at <= now:
        return "expired"
    return "upcoming" if alert.starts_at > now else "in_force"


@bp.get("/a/<code>")
def alert_page(code: str) -> tuple[str, int, dict[str, str]]:
    alert = _public_alert(code)
    if alert is None:
        message = _(
            "No emergency alert has the code “%(code)s”. Please check the code under the QR "
            "code on the screen.", code=code[:12])
        return render_template("error.html", code=404, message=message), 404, {}
    state = public_state(alert)
    color = protocol.LEVEL_COLORS[alert.level]
    html = render_template(
        "public/alert.html",
        alert=alert,
        state=state,
        color=color,
        text_color="#111" if alert.level == 3 else "#fff",
        level_label=str(LEVEL_LABELS[alert.level]),
        event_level=EVENT_ALERT_NAMES[alert.level] % {"event": alert.event},
        regions=[r.full_name for r in alert.targets],
    )
    # Short: a lifted alert must not linger in a cache as if it were in force.
    return html, 200, {"Cache-Control": "public, max-age=15"}


@bp.get("/a/<code>/qr.png")
def alert_qr_png(code: str) -> Response:
    # Any alert's code, also one still waiting: its QR code is only its address.
    if not CODE_RE.match(code or ""):
        abort(404)
    try:
        alert = alerts.get(code)
    except NotFound:
        abort(404)
    try:
        scale = int(request.args.get("scale", QR_SCALE_DEFAULT))
    except ValueError:
        scale = QR_SCALE_DEFAULT
    scale = min(max(scale, 1), QR_SCALE_MAX)
    body = qr.qr_png(alerts.alert_url(alert.code), scale, label=f"{_('Code')} {alert.code}")
    response = current_app.response_class(body, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["Vary"] = "Cookie"  # the label's language
    return response
