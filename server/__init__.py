"""Cunping server: the Flask application that holds notices, regions, users and screens.

`create_app` is imported lazily so that `python -m server player` (and the `cunping player`
command) can run on a set-top box where Flask is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application; see `server.app.create_app`."""
    from server.app import create_app as _create_app

    return _create_app(config)
