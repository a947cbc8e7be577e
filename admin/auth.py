"""Logging in and out. Attempts are rate-limited per address (Flask-Limiter)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from admin import bp
from admin.guards import login_required
from server.extensions import limiter
from server.services import audit, sessions, users


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    remember = BooleanField(_l("Keep me logged in on this computer"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after login."""
    if not target:
        return url_for("admin.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("admin.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"],
               key_func=lambda: f"login:{request.remote_addr}")
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("admin.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(form.username.data or "", form.password.data or "")
        if user is None:
            audit.record(None, "login", None, "failed", detail={"username": form.username.data,
                                                                "ip": request.remote_addr})
            from server.extensions import db

            db.session.commit()
            flash(_("Wrong username or password."), "error")
        else:
            remember = bool(form.remember.data)
            sessions.start(user, remember=remember, ip=request.remote_addr,
                           user_agent=request.headers.get("User-Agent"))
            login_user(user, remember=remember)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    sessions.end_current(current_user)  # on every process: its cookies name it
    logout_user()
    flash(_("You are logged out."), "info")
    return redirect(url_for("admin.login"))
