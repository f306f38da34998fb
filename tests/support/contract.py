"""The registry as a terminal reaches it, in-process or over HTTP (the contract tests, and the
promotion tests that run through both clients)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from flask import Flask

from kiosk.registry.client import LocalRegistryClient, RegistryClient
from kiosk.registry.domain import RegistryError
from kiosk.registry.http_client import HttpRegistryClient
from kiosk.registry.services import RegistryService

from .factories import build_app, patron_data
from .live_server import serve


@dataclasses.dataclass
class Registry:
    kind: str
    client: RegistryClient
    service: RegistryService

    def patron(self, **overrides: object) -> tuple[str, str]:
        """Register and log in through the client; answers (card number, session token)."""
        data = patron_data(**overrides)
        card = self.client.register(data)
        token, _ = self.client.login(card, data.password)
        return card, token


def registry_app(db_url: Callable[[], str], tmp_path: Path) -> Flask:
    instance = tmp_path / f"instance-{len(list(tmp_path.iterdir()))}"
    return build_app(instance, registry=True, DATABASE_URL=db_url())


def connect(kind: str, app: Flask, stack: ExitStack) -> RegistryClient:
    service: RegistryService = app.extensions["registry_service"]
    stack.callback(service.store.engine.dispose)
    if kind == "local":
        return LocalRegistryClient(service)
    token, _ = service.add_terminal("ANT-PERMEKE", "test kiosk", actor="test")
    url = stack.enter_context(serve(app))
    client = HttpRegistryClient(url, token, connect_timeout=3, deadline=20)
    stack.callback(client.close)
    return client


def refusal(call: Callable[[], object]) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        call()
    return info.value
