"""The headers every answer of both apps carries (pages through kiosk.security's hook, the
API through kiosk.registry.api_server): one list, so the two cannot drift apart."""

from __future__ import annotations

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# Personal data must not outlive the visit in the browser's cache or history.
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
SAFE = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000")


def every_answer(https: bool) -> tuple[tuple[str, str], ...]:
    """What an answer that is not a static file carries, HSTS where served over HTTPS."""
    return (*NO_STORE, *SAFE, *((HSTS,) if https else ()))
