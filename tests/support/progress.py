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

from collections.abc import Callable, Generator

import pytest

# Measured with `time bash .ci/run` on the 2-core machine (README, "Tests and benchmarks").
FULL_RUN = "about 22 minutes"
QUICK_RUN = "about 4 minutes"
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
            "/usr/bin/chromium and nginx are used (a test that needs a missing one skips, "
            "saying why); `--quick` for the everyday subset"]


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


# Not a path the reporter will meet: it then ends its line and starts one with the file.
_NEW_LINE = "<a line of its own>"


class _LongTestLines:
    """A long test gets a line of its own, its name first and its result after it:
    `tests/browser/test_browser.py test_a_whole_journey[nl] … .` (verbose runs already print
    a line for every test)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def _reporter(self, nodeid: str) -> pytest.TerminalReporter | None:
        if self.config.get_verbosity() > 0 or nodeid not in self.config.stash.get(
                _long_tests, set()):
            return None
        return self.config.pluginmanager.get_plugin("terminalreporter")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logstart(self, nodeid: str) -> Generator[None, None, None]:
        reporter = self._reporter(nodeid)
        if reporter is not None:
            reporter.currentfspath = _NEW_LINE
        yield  # the reporter writes the file's name (not with -q)
        if reporter is not None:
            writer = self.config.get_terminal_writer()
            path, _, name = nodeid.partition("::")
            if reporter.showfspath:
                writer.write(f"{name} … ")
            else:
                if writer.width_of_current_line:
                    writer.line()
                writer.write(f"{path} {name} … ")

    @pytest.hookimpl(trylast=True)  # after the reporter's progress ("[ 95%]", maybe a newline)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        reporter = self._reporter(nodeid)
        if reporter is not None:
            reporter.currentfspath = _NEW_LINE
            writer = self.config.get_terminal_writer()
            if not reporter.showfspath and writer.width_of_current_line:
                writer.line()


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
