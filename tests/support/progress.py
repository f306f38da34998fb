"""What the test run says while it runs, so that the full run never looks hung.

- The header says how long the full run takes on the 2-core reference machine, what it uses
  when present (PostgreSQL, Chromium, nginx), and how to run the quick everyday subset.
- `--quick`: that subset — no browser, no PostgreSQL, nothing marked slow. CI runs all.
- A long test (marked `slow` or `browser`) gets a line when it starts, with its name.
- The `progress` fixture writes a line from inside a long test (a storm's phases), past
  pytest's output capture.

A pytest plugin: tests/conftest.py loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator

import pytest

# Measured with `time bash .ci/run` on the 2-core machine (README, "Tests and benchmarks").
FULL_RUN = "16 to 22 minutes"
QUICK_RUN = "about 2 minutes with -n 2"
LONG_MARKS = ("slow", "browser")
QUICK_SKIPS = ("slow", "browser", "postgres")

Say = Callable[[str], None]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick", action="store_true",
        help=f"the everyday subset ({QUICK_RUN}): no browser, no PostgreSQL, no test marked "
             "slow. CI runs everything.")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.getoption("quick"):
        return [f"quick subset ({QUICK_RUN}): no browser, no PostgreSQL, no slow test; "
                "CI runs everything"]
    return [f"full run: {FULL_RUN} on a 2-core machine; PostgreSQL on 127.0.0.1:5432, "
            "/usr/bin/chromium, nginx and Java (the HTML validator) are used (a test that needs "
            "a missing one skips, saying why); `--quick -n 2` for the everyday subset"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("quick"):
        kept, dropped = [], []
        for item in items:
            quick = not any(item.get_closest_marker(mark) for mark in QUICK_SKIPS)
            (kept if quick else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    config.stash[_long_tests] = {
        item.nodeid for item in items
        if any(item.get_closest_marker(mark) for mark in LONG_MARKS)}


_long_tests = pytest.StashKey[set[str]]()


class _LongTestLines:
    """A long test gets a line of its own, its name first and its result after it:
    `tests/browser/test_browser.py test_a_whole_journey[nl] … .`, and the tests after it
    start a new line (verbose runs already print a line for every test)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.after_long = False  # the last test had a line of its own: start a new one

    def _is_long(self, nodeid: str) -> bool:
        return nodeid in self.config.stash.get(_long_tests, set())

    def _reporter(self) -> pytest.TerminalReporter | None:
        if self.config.get_verbosity() > 0:
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logstart(self, nodeid: str) -> Generator[None, None, None]:
        reporter, long = self._reporter(), self._is_long(nodeid)
        writer = self.config.get_terminal_writer()
        path, _, name = nodeid.partition("::")
        if reporter is not None and (long or self.after_long):
            if writer.width_of_current_line:
                writer.line()
            if reporter.showfspath:  # the file's name as the reporter would write it
                fspath = self.config.rootpath / path
                writer.write(os.path.relpath(fspath, self.config.invocation_params.dir) + " ")
                reporter.currentfspath = fspath  # so it writes nothing more here
            self.after_long = long
        yield
        if reporter is not None and long:
            writer.write(f"{name} … " if reporter.showfspath else f"{path} {name} … ")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_LongTestLines(config), "kiosk-long-test-lines")


@pytest.fixture
def progress(request: pytest.FixtureRequest) -> Say:
    """`progress("phase 2: 500 seats given up")`: a line on the terminal now, captured or not."""
    config = request.config
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(text: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(f"    {text}")

    return say
