"""The registry as a terminal reaches it, in-process and over HTTP: the contract tests' fixtures
(also used by the promotion tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.support.contract import Registry, connect, registry_app


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Servers, clients and engines, closed at the end of a test."""
    with ExitStack() as items:
        yield items


@pytest.fixture(params=["local", "http"])
def registry(request, db_url, tmp_path, stack) -> Registry:  # type: ignore[no-untyped-def]
    app = registry_app(db_url, tmp_path)
    return Registry(request.param, connect(request.param, app, stack),
                    app.extensions["registry_service"])
