"""Where templates/, static/ and translations/ are, in a checkout and when installed.

In the repository they sit at the top level, beside the kiosk package. setup.cfg maps them
into the package (kiosk/templates, kiosk/static, kiosk/translations), so an installed wheel
has them inside it. An editable install (pip install -e .) leaves the package in the
checkout, so the top-level folders are used there. No Flask import here.
"""

from __future__ import annotations

from pathlib import Path

RESOURCES = frozenset({"templates", "static", "translations"})

_PACKAGE_DIR = Path(__file__).resolve().parent  # the same folder as kiosk.__file__'s


def resource_dir(name: str) -> Path:
    """Absolute path of the templates, static or translations folder.

    The copy inside the package wins (installed wheel); otherwise the checkout's top-level
    folder (checkout or editable install). Raises FileNotFoundError when neither exists, so
    that a missing folder fails loudly instead of e.g. silently showing English.
    """
    if name not in RESOURCES:
        raise ValueError(f"unknown resource folder {name!r}; expected one of {sorted(RESOURCES)}")
    inside = _PACKAGE_DIR / name
    if inside.is_dir():
        return inside
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"{name}/ is neither at {inside} nor at {checkout}")
