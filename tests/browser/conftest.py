"""A real browser: Debian's Chromium through Playwright (never `playwright install`), and the
app served over HTTP for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, LAUNCH_ARGS, Live, Servers, require_browser


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """One Chromium for the whole run, shared by every browser test module: Playwright's
    sync API cannot be started a second time while it runs in the same thread."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    """`live_server(**config)` → the app on a fresh SQLite registry, served over HTTP."""
    servers = Servers()
    count = iter(range(1000))
    yield lambda **overrides: servers.start(tmp_path / f"live{next(count)}", **overrides)
    servers.close()
