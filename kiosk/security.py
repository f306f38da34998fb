"""A shared public PC: visits that end by themselves, nothing cached, safe redirects, headers."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from markupsafe import Markup
from werkzeug.wrappers import Response

from . import answer_headers
from .registry import request_scope
from .registry.domain import RegistryError
from .registry_setup import registry

csrf = CSRFProtect()

# Requests that must not count as patron activity or be redirected.
_PASSIVE_ENDPOINTS = {"static"}
# terminals, probes and the metrics scraper, not a patron's visit
_MACHINE_BLUEPRINTS = {"api", "health", "metrics"}
# Where the browser session keeps staff tokens that end with the visit: a librarian's
# take-over on the kiosk (kiosk.terminal.assist) and a staff-page log-in (kiosk.staff). Two
# keys: a take-over handed back to the patron must never open the staff pages.
TAKE_OVER_TOKEN_KEY = "staff_token"
STAFF_PAGES_TOKEN_KEY = "staff_page_token"
REVOKE_BUDGET = 2.0  # seconds a visit's end may wait for the registry to revoke its sessions


def now() -> float:
    """The visit clock; tests move it instead of sleeping."""
    return time.time()


def idle_limit_seconds() -> int:
    """Server side: the warning, the countdown, and a little grace for a slow network."""
    cfg = current_app.config
    return cfg["IDLE_WARNING_SECONDS"] + cfg["IDLE_COUNTDOWN_SECONDS"] + 10


def end_visit() -> None:
    """Revoke the registry session and wipe everything the browser holds for this visit."""
    # The patron is leaving: the registry gets a short moment to revoke their sessions (who
    # is logged in may itself be asked of it); unreachable, they end by themselves when idle,
    # and the browser forgets them right now.
    with request_scope.at_most(REVOKE_BUDGET):
        token = getattr(current_user, "token", None)
        if token:
            try:
                registry().logout(token)
            except RegistryError:
                pass
        # A librarian's take-over (kiosk.terminal.assist) and a staff-page log-in on this
        # browser (kiosk.staff) end with the visit, in the registry too, not only the cookie.
        for key in (TAKE_OVER_TOKEN_KEY, STAFF_PAGES_TOKEN_KEY):
            staff_token = session.get(key)
            if staff_token and "registry" in current_app.extensions:
                try:  # in-process or over HTTP alike
                    current_app.extensions["registry"].staff_logout(staff_token)
                except RegistryError:
                    pass
    logout_user()
    session.clear()
    g.visit_ended = True  # the answer tells the browser to drop its cache and storage too


def safe_next(target: str | None, fallback: str) -> str:
    """Only a path on this site: never `//host`, `/\\host`, a scheme, or control characters."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return fallback
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return fallback
    return target


def csrf_field(form: FlaskForm) -> Markup:
    """A form's hidden CSRF field, without an id: a page holds several forms, and an id
    would be the same in each (invalid HTML). Nothing where CSRF is off (in tests)."""
    field = getattr(form, "csrf_token", None)
    return Markup(field(id=False)) if field is not None else Markup("")


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.jinja_env.globals["csrf_field"] = csrf_field

    @app.before_request
    def enforce_visit_limits() -> Response | None:
        if request.endpoint in _PASSIVE_ENDPOINTS or request.blueprint in _MACHINE_BLUEPRINTS:
            return None
        if "start.home" not in current_app.view_functions:
            return None  # the registry server: no kiosk visits; staff sessions have their own
        t = now()
        started, seen = session.get("started"), session.get("seen")
        if started is not None and seen is not None:
            too_idle = t - seen > idle_limit_seconds()
            too_long = t - started > current_app.config["SESSION_MAX_SECONDS"]
            if too_idle or too_long:
                end_visit()
                session["notice"] = "visit_ended"
                session["started"] = session["seen"] = t
                return redirect(
                    url_for("start.home", lang=current_app.config["DEFAULT_LANGUAGE"])
                )
        session.setdefault("started", t)
        session["seen"] = t
        return None

    @app.after_request
    def protect_response(response: Response) -> Response:
        if request.endpoint not in _PASSIVE_ENDPOINTS:
            for name, value in answer_headers.NO_STORE:
                response.headers[name] = value
        for name, value in answer_headers.SAFE:
            response.headers.setdefault(name, value)
        if g.get("visit_ended"):
            # Not "cookies": the fresh visit cookie set by this same answer must survive.
            response.headers["Clear-Site-Data"] = '"cache", "storage"'
        if current_app.config["HTTPS"]:
            response.headers.setdefault(*answer_headers.HSTS)
        return response
