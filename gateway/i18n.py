"""French and English for every page: ?lang=, then the visitor's choice, then the browser."""

from __future__ import annotations

from flask import current_app, request, session
from flask_babel import Babel

LANGUAGES = ("fr", "en")
babel = Babel()


def select_locale() -> str:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        return chosen
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    default = current_app.extensions["runtime"].rules.current.city.default_language
    return request.accept_languages.best_match(LANGUAGES, default=default) or default


def current_language() -> str:
    from flask_babel import get_locale

    return str(get_locale() or "fr")[:2]
