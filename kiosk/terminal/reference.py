"""Reference data the terminal may keep a little while: libraries and the catalogue.

They change a few times a year, so a page needs no registry round trip for them, and a form
can still be shown again while the registry is briefly unreachable (a stale copy is used).
Seats are never cached: "N seats left" is always live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from .. import security
from ..registry.domain import (
    Catalogue,
    CourseView,
    InstitutionView,
    Maintenance,
    RegistryError,
    SignUpRules,
)
from ..registry_setup import registry

FRESH_FOR = 60.0  # seconds

_lock = threading.Lock()


def _cache() -> dict[tuple[Any, ...], tuple[float, Any]]:
    """One cache per app (per registry it talks to)."""
    return current_app.extensions.setdefault("reference_cache", {})


_NO_FALLBACK = object()


def _cached(key: tuple[Any, ...], load: Callable[[], Any], fresh_for: float = FRESH_FOR, *,
            fallback: Any = _NO_FALLBACK) -> Any:
    """`load()`'s answer, kept `fresh_for` seconds; a stale copy while the registry is busy or
    unreachable. With `fallback`, a refusal with nothing to fall back on answers it, kept as
    long as an answer: the pages meanwhile do not ask again."""
    now = time.monotonic()
    cache = _cache()
    with _lock:
        hit = cache.get(key)
    if hit and now - hit[0] < fresh_for:
        return hit[1]
    try:
        value = load()
    except RegistryError as error:
        if hit and error.code in ("unavailable", "busy"):
            return hit[1]
        if fallback is _NO_FALLBACK:
            raise
        value = fallback
    with _lock:
        cache[key] = (now, value)
    return value


def institutions() -> list[InstitutionView]:
    return _cached(("institutions",), registry().institutions)


def catalogue(lang: str) -> Catalogue:
    return _cached(("catalogue", lang), lambda: registry().catalogue(lang))


def course(slug: str, lang: str) -> CourseView:
    found = next((c for c in catalogue(lang).courses if c.slug == slug), None)
    if found is None:
        raise RegistryError("course_not_found")
    return found


def maintenance() -> Maintenance | None:
    """The maintenance message, asked for at most every 15 s: a new one reaches every kiosk
    within that; its end time is checked on every page."""
    found = _cached(("maintenance",), registry().maintenance, fresh_for=15.0)
    now = datetime.fromtimestamp(security.now(), UTC).replace(tzinfo=None)  # naive UTC
    if found is None or found.until <= now:
        return None
    return found


def practice() -> bool:
    """Whether the registry is a practice one (the band on every page). Never in the way of
    a page: a registry that cannot say is taken as a real one, and asked again later."""
    return bool(_cached(("practice",), registry().practice, fallback=False))


def member_cards(library_code: str) -> bool:
    """Whether patrons at this library sign in with their library card and PIN."""
    return any(institution.member_cards and any(lib.code == library_code
                                                for lib in institution.libraries)
               for institution in institutions())


def sign_up_rules(library_code: str) -> SignUpRules | None:
    """What a sign-up at this library asks (its institution's rules); None for a library the
    kiosks do not offer."""
    return next((institution.sign_up for institution in institutions()
                 if any(lib.code == library_code for lib in institution.libraries)), None)


def library_name(code: str) -> str:
    """A library's name from its code; the code itself if the list no longer has it."""
    for institution in institutions():
        for library in institution.libraries:
            if library.code == code:
                return library.name
    return code
