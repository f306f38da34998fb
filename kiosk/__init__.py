"""The library course kiosk: a terminal app and, embedded or central, the seat registry.

The app factories live in kiosk.app; `kiosk.create_app` and `kiosk.create_registry_app` are
kept here as the names everyone uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app", "create_registry_app"]


def create_app(overrides: dict[str, Any] | None = None, instance_path: str | None = None) -> Flask:
    """The terminal: patron pages (kiosk.app.create_app)."""
    # Not at the top: kiosk.registry.api and kiosk.registry.http_client import __version__
    # from this package, so importing kiosk.app here would be a cycle.
    from .app import create_app as factory  # kept: see report

    return factory(overrides, instance_path)


def create_registry_app(
    overrides: dict[str, Any] | None = None, instance_path: str | None = None
) -> Flask:
    """The central registry: API, health checks and staff pages (kiosk.app.create_registry_app)."""
    from .app import create_registry_app as factory  # kept: see report

    return factory(overrides, instance_path)
