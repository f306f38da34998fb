"""A terminal token stays off the command line: `kiosk doctor` and `kiosk terminal serve` read it
from `--token-file` (or the --env-file), refuse a missing, unreadable or empty file with its
reason, and still take `--token`, with a one-line warning on stderr that others can see it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import waitress
from click.testing import CliRunner, Result

import kiosk.cli
from kiosk.cli import main
from tests.support.factories import build_app
from tests.support.live_server import serve

WARNING = ("Warning: --token is visible to other users of this machine (ps); put the token in "
           "--env-file or --token-file instead.")


pytestmark = pytest.mark.usefixtures("clean_kiosk_environment")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A registry on loopback (SQLite: the token's path does not depend on the database) and a
    terminal token it issued."""
    app = build_app(tmp_path_factory.mktemp("registry"), registry=True)
    token, _ = app.extensions["registry_service"].add_terminal("ANT-PERMEKE", "token test", "t")
    with serve(app) as url:
        yield url, token
    app.extensions["registry_service"].store.engine.dispose()


def doctor(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--instance-path", str(tmp_path / "terminal"),
                                     *args], env={"KIOSK_LIBRARY_CODE": "ANT-PERMEKE"})


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """check → (status, detail) from the printed table (its first line is the header)."""
    out = {}
    for line in stdout.splitlines()[1:]:
        name, status, detail = line.split(None, 2)
        out[name] = (status, detail)
    return out


def test_doctor_reads_the_token_from_a_file(registry: tuple[str, str], tmp_path: Path) -> None:
    url, token = registry
    token_file = tmp_path / "terminal.token"
    token_file.write_text(f"\ufeff{token}\n", encoding="utf-8")  # Notepad's BOM, an editor's \n
    result = doctor(tmp_path, "--registry-url", url, "--token-file", str(token_file))
    assert result.exit_code == 0, result.output
    assert rows(result.stdout)["token"][0] == "OK", result.stdout
    assert result.stderr == ""
    assert token not in result.output


def test_a_wrong_token_in_the_file_is_what_doctor_checks(registry: tuple[str, str],
                                                         tmp_path: Path) -> None:
    """The file's content is the token used, not ignored in favour of something else."""
    url, _ = registry
    token_file = tmp_path / "terminal.token"
    token_file.write_text("kt_not_issued\n", encoding="utf-8")
    result = doctor(tmp_path, "--registry-url", url, "--token-file", str(token_file))
    assert result.exit_code == 1
    assert rows(result.stdout)["token"][0] == "FAIL", result.stdout


def test_token_on_the_command_line_still_works_with_a_warning(registry: tuple[str, str],
                                                              tmp_path: Path) -> None:
    url, token = registry
    result = doctor(tmp_path, "--registry-url", url, "--token", token)
    assert result.exit_code == 0, result.output
    assert rows(result.stdout)["token"][0] == "OK"
    assert result.stderr.splitlines() == [WARNING]
    assert token not in result.stderr


def _bad_token_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "terminal.token"
    if kind == "empty":
        path.write_text(" \n\n", encoding="utf-8")
    elif kind == "not text":
        path.write_bytes(b"\xff\xfe\x00kt")
    elif kind == "under a file":  # unreadable: its "folder" is a file (ENOTDIR, also as root)
        path.write_text("kt_x\n", encoding="utf-8")
        path = path / "token"
    elif kind == "a folder":
        path.mkdir()
    return path


BAD_FILES = [("missing", "No such file or directory"), ("empty", "empty (it should hold"),
             ("not text", "not a text file"), ("under a file", "Not a directory"),
             ("a folder", "Is a directory")]
# Not "no permission": CI runs as root, who reads a file whatever its mode; the other
# unreadable files take the same way (OSError and its reason).


@pytest.mark.parametrize(("kind", "reason"), BAD_FILES)
def test_doctor_refuses_a_bad_token_file_with_its_reason(tmp_path: Path, kind: str,
                                                         reason: str) -> None:
    path = _bad_token_file(tmp_path, kind)
    result = doctor(tmp_path, "--registry-url", "http://127.0.0.1:9", "--token-file", str(path))
    assert result.exit_code == 1
    status, detail = rows(result.stdout)["config"]
    assert status == "FAIL" and detail.startswith(f"--token-file {path}: ") and reason in detail


@pytest.mark.parametrize(("kind", "reason"), BAD_FILES)
def test_terminal_refuses_a_bad_token_file_before_serving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, reason: str) -> None:
    monkeypatch.setattr(waitress, "serve", _must_not_serve)
    path = _bad_token_file(tmp_path, kind)
    result = CliRunner().invoke(main, ["terminal", "serve", "--registry-url",
                                       "http://127.0.0.1:9", "--token-file", str(path)])
    assert result.exit_code == 1
    # A SystemExit's message, as for a bad --env-file: Python prints it on stderr, CliRunner
    # puts it in the output.
    assert f"--token-file {path}: " in result.output and reason in result.output


def _must_not_serve(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("served despite a bad token")


@pytest.mark.parametrize("command", [["doctor"], ["terminal", "serve"]])
def test_token_and_token_file_together_are_refused(tmp_path: Path, command: list[str]) -> None:
    token_file = tmp_path / "terminal.token"
    token_file.write_text("kt_a\n", encoding="utf-8")
    result = CliRunner().invoke(main, [*command, "--token", "kt_b", "--token-file",
                                       str(token_file)])
    assert result.exit_code == 2
    assert "give --token or --token-file, not both" in result.stderr


class _Stop(Exception):
    """Raised in place of building the app: the test needs only what it was given."""


@pytest.mark.parametrize(("how", "warned"), [("--token-file", False), ("--token", True)])
def test_terminal_serves_with_the_token_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              how: str, warned: bool) -> None:
    seen: list[dict[str, Any]] = []

    def create_app(overrides: dict[str, Any]) -> None:
        seen.append(overrides)
        raise _Stop

    monkeypatch.setattr(kiosk.cli, "create_app", create_app)
    token_file = tmp_path / "terminal.token"
    token_file.write_text("kt_from_a_file\n", encoding="utf-8")
    value = str(token_file) if how == "--token-file" else "kt_from_a_file"
    result = CliRunner().invoke(main, ["terminal", "serve", "--registry-url",
                                       "https://registry.example.be", how, value])
    assert isinstance(result.exception, _Stop), result.output
    assert seen == [{"REGISTRY_URL": "https://registry.example.be",
                     "REGISTRY_TOKEN": "kt_from_a_file"}]
    assert result.stderr.splitlines() == ([WARNING] if warned else [])
