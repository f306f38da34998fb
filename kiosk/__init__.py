"""The library course kiosk: a terminal app and, embedded or central, the seat registry.

The app factories are `kiosk.app.create_app` and `kiosk.app.create_registry_app`. Importing
the package itself loads nothing more than its version, so that a light module (the demo's
partner systems, `kiosk.paths`) starts without Flask and the registry.
"""

from __future__ import annotations

from .version import __version__

__all__ = ["__version__"]
