"""The admin's one guard: logged in (JSON 401 for scripts, a redirect for browsers), and
helpers that turn service errors into form messages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from server.errors import json_error, wants_json
from server.models import User
from server.services.errors import ValidationError

F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            if wants_json():
                return json_error(401, "login required")
            return redirect(url_for("admin.login", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def me() -> User:
    """The logged-in user as a model (for passing to services)."""
    return cast(User, current_user._get_current_object())  # type: ignore[attr-defined]


def form_errors(form: FlaskForm, exc: ValidationError) -> None:
    """Put a service's field errors on the form's fields (or flash those without a field)."""
    for field, message in exc.errors.items():
        target = getattr(form, field, None)
        if target is not None and hasattr(target, "errors"):
            errors = list(target.errors) if isinstance(target.errors, list | tuple) else []
            target.errors = [*errors, message]
        else:
            flash(message, "error")


MAX_PAGE = 100_000


def page_arg() -> int:
    """?page=N for a list: 1 when missing or not a number, at most MAX_PAGE (a page of 10**39
    is no page, and its offset would not fit the database)."""
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), MAX_PAGE)
