"""Language: always the patron's explicit choice, carried in the URL (never Accept-Language)."""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date
from flask import Flask, current_app, g, request, url_for
from flask_babel import Babel, get_locale

from .catalogs import compile_catalogues
from .config import LANGUAGES
from .paths import resource_dir
from .registry.domain import LOCALES

babel = Babel()

# Dates for patrons in Belgian long format, never a numeric short one.
LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "en": "English"}


def current_language() -> str:
    lang = getattr(g, "lang", None)
    if lang in LANGUAGES:
        return lang
    return current_app.config["DEFAULT_LANGUAGE"]


def long_date(value: date | datetime) -> str:
    return format_date(value, format="long", locale=LOCALES[current_language()])


def init_app(app: Flask) -> None:
    translations = resource_dir("translations")
    try:  # a checkout has only .po files; an installed wheel ships them compiled
        compile_catalogues(translations)
    except OSError:
        pass
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(translations)
    babel.init_app(app, locale_selector=current_language)

    @app.url_value_preprocessor
    def pull_lang(endpoint: str | None, values: dict | None) -> None:
        if values and "lang" in values:
            g.lang = values.pop("lang")

    @app.url_defaults
    def add_lang(endpoint: str, values: dict) -> None:
        if "lang" in values or not app.url_map.is_endpoint_expecting(endpoint, "lang"):
            return
        values["lang"] = current_language()

    @app.context_processor
    def language_context() -> dict:
        return {
            "get_locale": get_locale,
            "lang": current_language(),
            "languages": LANGUAGES,
            "language_names": LANGUAGE_NAMES,
            "long_date": long_date,
        }

    def other_language_url(lang: str) -> str:
        """The same page in another language."""
        if request.endpoint and request.url_rule and "lang" in request.url_rule.arguments:
            args = dict(request.view_args or {})
            args["lang"] = lang
            return url_for(request.endpoint, **args)
        home = "start.home" if "start.home" in current_app.view_functions else "staff.home"
        return url_for(home, lang=lang)

    app.jinja_env.globals["other_language_url"] = other_language_url
