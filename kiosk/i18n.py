"""Language: always the patron's explicit choice, carried in the URL (never Accept-Language)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from babel.dates import format_date, format_time, get_datetime_format
from flask import Flask, current_app, g, has_request_context, request, url_for
from flask_babel import Babel, get_locale

from .catalogs import compile_catalogues
from .config import LANGUAGES
from .french import elide_de
from .paths import resource_dir
from .registry.days import BELGIUM
from .registry.domain import LOCALES

babel = Babel()

# Dates for patrons in Belgian long format, never a numeric short one.
LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "en": "English"}


def language_in_path(path: str) -> str | None:
    """The language an address names in its first segment (`/fr/…`), if it names one."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in LANGUAGES else None


def current_language() -> str:
    """The page's language: its route's `lang`; where no route matched (a 404, a 405) or
    before it is read, the address's first segment; else the branch's default. Flask-Babel
    keeps the first answer for the whole request, so it must be right from the start."""
    lang = getattr(g, "lang", None)
    if lang in LANGUAGES:
        return lang
    in_path = language_in_path(request.path) if has_request_context() else None
    return in_path or current_app.config["DEFAULT_LANGUAGE"]


def _locale(lang: str | None = None) -> str:
    """Belgian Dutch and French; British English, so a date reads day before month."""
    return LOCALES.get(lang or current_language(), LOCALES["en"])


def long_date(value: date | datetime) -> str:
    """A day written out ("6 December 2026"); a naive-UTC moment counts as its Belgian day."""
    day = belgian_time(value).date() if isinstance(value, datetime) else value
    return format_date(day, format="long", locale=_locale())


# The registry keeps naive UTC; people read Belgian time. Every page (staff and patron alike)
# turns one into the other here, with the zone of kiosk.registry.days.


def with_name(text: str, name: str) -> str:
    """A translated sentence naming someone, French elision applied ("d’An Peeters"): in
    the language being rendered, which a printed receipt sets to the patron's."""
    locale = get_locale()
    return elide_de(text, name) if locale is not None and locale.language == "fr" else text


def belgian_time(moment: datetime) -> datetime:
    """A naive-UTC (or aware) moment as the clock on a Belgian wall shows it."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(BELGIUM)


def moment_text(moment: datetime | None, lang: str | None = None) -> str:
    """Date and time in Belgian time, day before month: "6 Dec 2026, 22:59", "6 déc. 2026,
    22:59"; "–" for none. In the page's language unless `lang` says otherwise."""
    if moment is None:
        return "–"
    here = belgian_time(moment)
    return (str(get_datetime_format("medium", locale=_locale(lang))).replace("'", "")
            .replace("{0}", time_text(here, lang)).replace("{1}", day_text(here.date(), lang)))


def time_text(moment: datetime, lang: str | None = None) -> str:
    """The time of day in Belgian time: "22:59"."""
    return format_time(belgian_time(moment), format="short", locale=_locale(lang))


def day_text(day: date | datetime | None, lang: str | None = None) -> str:
    """A day, short: "6 Dec 2026", "6 déc. 2026"; a naive-UTC moment counts as its Belgian
    day; "–" for none."""
    if day is None:
        return "–"
    if isinstance(day, datetime):
        day = belgian_time(day).date()
    return format_date(day, format="medium", locale=_locale(lang))


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
            "with_name": with_name,
        }

    app.jinja_env.filters["moment"] = moment_text
    app.jinja_env.filters["day"] = day_text

    def other_language_url(lang: str) -> str:
        """The same page in another language."""
        if request.endpoint and request.url_rule and "lang" in request.url_rule.arguments:
            args = dict(request.view_args or {})
            args["lang"] = lang
            return url_for(request.endpoint, **args)
        home = "start.home" if "start.home" in current_app.view_functions else "staff.home"
        return url_for(home, lang=lang)

    app.jinja_env.globals["other_language_url"] = other_language_url
