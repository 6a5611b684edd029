"""The application factory: settings → database → rules → jobs → web."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, current_app, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from adapters import registry
from router import RuleBookHolder

from . import guard, logs
from .db import Database
from .i18n import babel, select_locale
from .ids import DatabaseIdConverter
from .inbox import remember_language
from .queue import InlineQueue, RqQueue
from .runtime import Runtime
from .settings import load_settings

csrf = CSRFProtect()


def create_app(overrides=None) -> Flask:
    """Raises router.ConfigError when config/ is invalid: the gateway does not start on it."""
    settings = load_settings(overrides=overrides)
    logs.configure(str(settings["GATEWAY_LOG_LEVEL"]))
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseIdConverter  # before any route: ids past INTEGER find no route
    app.before_request(_checks)  # first of the app's hooks: before anything reads the input
    app.config.update(settings)
    app.config.update(
        SECRET_KEY=settings["GATEWAY_SECRET_KEY"] or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=str(settings["GATEWAY_PUBLIC_URL"]).startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in ``_checks``, after the NUL guard
        JSON_SORT_KEYS=False,
    )
    app.session_interface = _Sessions()
    database = Database()
    database.init_app(app)
    rules = RuleBookHolder(Path(str(settings["GATEWAY_CONFIG_DIR"])), set(registry.SINKS))
    runtime = Runtime(settings=settings, db=database, rules=rules)
    if settings.get("REDIS_URL"):
        runtime.jobs = RqQueue(str(settings["REDIS_URL"]))
    else:
        runtime.jobs = InlineQueue(runtime)
        if settings["GATEWAY_INLINE_JOBS"]:
            runtime.jobs.start_sweeper(float(settings["GATEWAY_SWEEP_SECONDS"]))
    app.extensions["runtime"] = runtime
    babel.init_app(app, locale_selector=select_locale)
    csrf.init_app(app)
    _register_blueprints(app)
    _register_errors(app)
    app.context_processor(_template_globals)
    return app


def _checks() -> None:
    """Every request's checks, in one hook: no NUL anywhere (guard.py); then, but for the
    provider webhooks (signed, cookie-less machines, which skip the two checks that never
    apply to them), a form's CSRF token (exempt: the API, Open311) and a signed-in user's
    choice of language."""
    guard.refuse_nul()
    if request.path.startswith("/webhooks/"):
        return
    if current_app.config["WTF_CSRF_ENABLED"]:  # as Flask-WTF's own hook does
        csrf.protect(apply_exemptions=True)
    remember_language()


class _Sessions(SecureCookieSessionInterface):
    """Provider webhooks (signed, cookie-less machines) get an empty session that is never
    saved: no cookie is read, verified, signed or set for them. Pages and the API unchanged."""

    def open_session(self, app, request):
        if request.path.startswith("/webhooks/"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if not request.path.startswith("/webhooks/"):
            super().save_session(app, session, response)


def _template_globals() -> dict:
    from flask_babel import get_locale

    from . import labels

    return {"labels": labels, "get_locale": get_locale, "place_example": _place_example}


def _place_example() -> str | None:
    """One of the city's named places (config/places.yaml), for the address field's hint."""
    return current_app.extensions["runtime"].rules.current.addresses.landmarks.example()


def _register_blueprints(app: Flask) -> None:
    from .admin import bp as admin
    from .api import bp as api
    from .dashboard import bp as dashboard
    from .inbox import bp as inbox
    from .open311 import bp as open311
    from .public import bp as public
    from .webhooks import bp as webhooks

    csrf.exempt(api)  # token-authenticated JSON, no cookies
    csrf.exempt(webhooks)  # providers sign their payloads instead
    csrf.exempt(open311)  # api_key-authenticated, no cookies
    for blueprint in (public, api, inbox, admin, webhooks, dashboard, open311):
        app.register_blueprint(blueprint)


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/", "/healthz"))


def _register_errors(app: Flask) -> None:
    def handler(status: int, message: str):
        def handle(error):
            said = guard.WHY if isinstance(error, guard.NulCharacter) else message
            if request.path.startswith("/open311/"):  # the spec's own error document
                from .open311.formats import error as document

                return document("json" if request.path.endswith(".json") else "xml", status, said)
            if _wants_json():
                return jsonify(error=said), status
            return render_template("error.html", status=status), status

        return handle

    app.register_error_handler(404, handler(404, "not found"))
    app.register_error_handler(405, handler(405, "method not allowed"))
    app.register_error_handler(413, handler(413, "request body too large (1 MB at most)"))
    app.register_error_handler(400, handler(400, "bad request"))
    app.register_error_handler(403, handler(403, "forbidden"))
