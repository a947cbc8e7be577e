"""Chinese by default, English on request (?lang=en, a cookie, or the user's setting)."""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_login import current_user

from server.extensions import babel

LANG_COOKIE = "lang"


def select_locale() -> str:
    supported = ("zh", "en")
    if not has_request_context():  # CLI, scheduler: the default language
        return "zh"
    wanted = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    if wanted in supported:
        return wanted
    user = getattr(current_user, "locale", None) if current_user else None
    if user in supported:
        return user
    return "zh"


def init_app(app: Flask) -> None:
    import os

    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=os.path.join(os.path.dirname(__file__), "translations"),
    )

    @app.before_request
    def _fresh_locale() -> None:
        # Flask-Babel caches the locale on `g`, which lives as long as the app context; when one
        # context spans several requests (tests, CLI-driven calls) each request must choose anew.
        g.pop("_flask_babel", None)

    @app.after_request
    def _remember_language(response):  # type: ignore[no-untyped-def]
        lang = request.args.get("lang")
        if lang in ("zh", "en"):
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax")
        return response

    @app.context_processor
    def _locale() -> dict[str, str]:
        lang = select_locale()
        return {"current_lang": lang, "html_lang": "zh-CN" if lang == "zh" else "en"}
