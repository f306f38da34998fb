"""The app factories: the terminal (patron pages, the registry embedded or over HTTP) and the
central registry (API, health checks, staff pages). Each mounts the parts it is made of."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import AnyConverter

from . import config as config_module
from . import i18n, logs, mail_links, metrics, registry_setup, security, staff, terminal
from .paths import resource_dir
from .registry import api, api_server
from .terminal.forms import ActionForm

# The package's name, not this module's: the logger (kiosk.logs.LOGGER), the root path and
# the default instance folder follow it.
APP_NAME = "kiosk"


class LanguageConverter(AnyConverter):
    """`/<lang:lang>/…` matches only the three languages; anything else is a 404."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, *config_module.LANGUAGES)


def base_app(overrides: dict[str, Any] | None, instance_path: str | None) -> Flask:
    """A configured app with nothing mounted yet (also what `kiosk registry backup` reads)."""
    app = Flask(
        APP_NAME,
        instance_path=config_module.instance_folder(instance_path),
        instance_relative_config=True,
        template_folder=str(resource_dir("templates")),
        static_folder=str(resource_dir("static")),
    )
    app.config.from_object(config_module.Config)
    app.config.from_pyfile("kiosk.cfg", silent=True)
    app.config.update(config_module.from_environment())
    app.config.update(overrides or {})
    instance = Path(app.instance_path)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = config_module.instance_secret_key(instance)
        app.config["SECRET_KEY_OF_THIS_HOST"] = True  # made here: no other host shares it
    if not app.config["DATABASE_URL"]:
        instance.mkdir(parents=True, exist_ok=True)
        app.config["DATABASE_URL"] = f"sqlite:///{instance / 'registry.sqlite3'}"
    app.config["WTF_CSRF_TIME_LIMIT"] = app.config["SESSION_MAX_SECONDS"]
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=app.config["SESSION_MAX_SECONDS"])
    config_module.apply_https(app.config)
    config_module.check(app.config)
    return app


def _behind_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies (the nginx front: 1), the client's address,
    scheme and host are what the nearest of them say in X-Forwarded-*: the audit log's desk
    address. None by default, so that a client reaching the app directly cannot make them up.
    Applied last, around all the app serves (the API's own server too)."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _academy(app: Flask) -> None:
    """The academy link is on when the registry runs here and has a SCIM platform
    (ACADEMY_SCIM_URL); off, seat changes are not even queued for it."""
    service = app.extensions.get("registry_service")
    if service is not None:
        service.academy.enabled = bool(app.config["ACADEMY_SCIM_URL"].strip())


def create_app(overrides: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """The terminal: patron pages. Without REGISTRY_URL the registry runs in this process
    (the embedded default) and its API is served too; with it, the terminal talks HTTP."""
    app = base_app(overrides, instance_path)
    logs.init_app(app)
    app.url_map.converters["lang"] = LanguageConverter
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    i18n.init_app(app)
    terminal.init_page_budget(app)
    security.init_app(app)
    registry_setup.init_app(app)
    _academy(app)
    if "registry_service" in app.extensions:  # the registry runs here: its /metrics too
        metrics.init_app(app, app.extensions["registry_service"])
    config_module.check_registry_at_start(app.config, app.extensions["registry"])
    terminal.init_app(app)
    staff.init_app(app)
    mail_links.init_app(app)  # the stop link of the new-course e-mails, if the registry is here
    staff_pages = "staff" in app.blueprints

    # Where the staff pages are mounted, an error at a staff address (no such page, a wrong
    # method, a librarian of another institution) is a staff page; elsewhere a patron's.
    # Both speak the address's language (kiosk.i18n.current_language).
    def http_error(error: HTTPException) -> Any:
        if staff_pages and staff.on_staff_page():
            return staff.http_error(error)
        return terminal.http_error(error)

    def crash(error: Exception) -> Any:
        if staff_pages and staff.on_staff_page():
            return staff.crash(error)
        return terminal.crash(error)

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, crash)
    _behind_proxies(app)
    return app


def create_registry_app(
    overrides: dict[str, Any] | None = None, instance_path: str | None = None
) -> Flask:
    """The central registry: the JSON API, health checks, the staff pages (the desk and
    the coordinator's console, under /<lang>/staff/) and, with METRICS_TOKEN, /metrics."""
    app = base_app(overrides, instance_path)
    logs.init_app(app)
    app.url_map.converters["lang"] = LanguageConverter
    service = registry_setup.init_service(app)
    _academy(app)
    metrics.init_app(app, service)
    i18n.init_app(app)
    security.init_app(app)
    api_server.init_app(app)
    staff.init_app(app)
    mail_links.init_app(app)  # the stop link of the new-course e-mails
    # What the shared form macros (templates/macros.html) need, as on the terminal.
    app.jinja_env.globals["aria_for"] = terminal.aria_for
    # Every staff form's hidden key, which makes a form sent again answered once
    # (kiosk.staff.once).
    app.jinja_env.globals["form_key_field"] = terminal.form_key_field
    app.context_processor(lambda: {"action_form": ActionForm(formdata=None)})
    app.register_error_handler(api.RegistryError, api.error_response)
    app.register_error_handler(api.HTTPException, staff.http_error)
    app.register_error_handler(Exception, staff.crash)
    _behind_proxies(app)
    return app
