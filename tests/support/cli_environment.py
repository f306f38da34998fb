"""A fixture for tests of the `kiosk` command: no KIOSK_* of the developer's environment, and
the catalogues compiled as any start would leave them (or doctor's translations row fails)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kiosk.catalogs import compile_catalogues
from kiosk.paths import resource_dir


@pytest.fixture
def clean_kiosk_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`--env-file` sets KIOSK_* in this process, as the service would: gone after the test."""
    for key in list(os.environ):
        if key.startswith("KIOSK_"):
            monkeypatch.delenv(key)
    compile_catalogues(resource_dir("translations"))
    yield
    for key in [key for key in os.environ if key.startswith("KIOSK_")]:
        del os.environ[key]
