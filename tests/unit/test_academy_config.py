"""The academy link's settings: off when ACADEMY_SCIM_URL is empty; otherwise refused at
start with a one-line reason, never showing the token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.config import Config, check
from kiosk.registry.academy_link import ScimConfig


def _config(**academy: object) -> dict[str, Any]:
    settings = {k: getattr(Config, k) for k in dir(Config) if k.isupper()}
    settings.update(TESTING=True, DATABASE_URL="sqlite://", **academy)
    return settings


def test_no_url_means_the_link_is_off() -> None:
    check(_config())
    assert ScimConfig.from_config(_config()) is None


@pytest.mark.parametrize(("url", "token", "message"), [
    ("ftp://academy.example.be/scim", "t", "ACADEMY_SCIM_URL must be http(s)://"),
    ("http://academy.example.be/scim/v2", "t", "must use https://"),
    ("https://academy.example.be/scim/v2", None, "needs ACADEMY_SCIM_TOKEN_FILE"),
    ("https://academy.example.be/scim/v2", "", "ACADEMY_SCIM_TOKEN_FILE is empty"),
])
def test_a_bad_academy_setting_stops_the_start(tmp_path: Path, url: str, token: str | None,
                                               message: str) -> None:
    token_file = ""
    if token is not None:
        token_file = str(tmp_path / "token")
        Path(token_file).write_text(token, encoding="utf-8")
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(_config(ACADEMY_SCIM_URL=url, ACADEMY_SCIM_TOKEN_FILE=token_file))


def test_a_token_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="cannot be read") as info:
        check(_config(ACADEMY_SCIM_URL="https://academy.example.be/scim/v2",
                      ACADEMY_SCIM_TOKEN_FILE=str(tmp_path / "missing")))
    assert "missing" not in str(info.value)


def test_the_token_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n", encoding="utf-8")
    settings = _config(ACADEMY_SCIM_URL="http://127.0.0.1:9/v2",  # loopback: http is fine
                       ACADEMY_SCIM_TOKEN_FILE=str(tmp_path / "token"), ACADEMY_TIMEOUT=3)
    check(settings)
    cfg = ScimConfig.from_config(settings)
    assert cfg is not None and cfg.token == "s3cret-token" and cfg.timeout == 3
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg)
