"""A real SCIM 2.0 platform for the tests: scim2-server's in-memory backend on loopback in a
thread (kiosk.academy_demo, as the demo runs it), and helpers to read what it holds."""

from __future__ import annotations

from pathlib import Path

from kiosk.academy_demo import ScimTestServer
from kiosk.registry.academy_link import ScimConfig

TOKEN = "test-academy-token"


def start_platform() -> ScimTestServer:
    return ScimTestServer(TOKEN).start()


def token_file(folder: Path) -> str:
    path = folder / "academy-token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return str(path)


def scim_config(platform: ScimTestServer, timeout: float = 2.0) -> ScimConfig:
    return ScimConfig(url=platform.url, token=TOKEN, timeout=timeout)


def platform_users(platform: ScimTestServer) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """externalId → (active, courses) of every user on the platform."""
    return {u.external_id or "": (bool(u.active),
                                  tuple(sorted(e.value or "" for e in u.entitlements or [])))
            for u in platform.users()}
