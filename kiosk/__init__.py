"""The library course kiosk: a terminal app and, embedded or central, the seat registry.

The app factories live in kiosk.app; `kiosk.create_app` and `kiosk.create_registry_app` are
the names everyone uses.
"""

from __future__ import annotations

from .app import create_app, create_registry_app
from .version import __version__

__all__ = ["__version__", "create_app", "create_registry_app"]
