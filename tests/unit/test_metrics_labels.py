"""The labels /metrics puts on its series (kiosk/metrics.py), and its token check: a client
can make up paths and methods, never a new series; a claim's answer has one outcome."""

from __future__ import annotations

import pytest

from kiosk.metrics import (
    authorised,
    claim_outcome,
    endpoint_label,
    method_label,
    status_label,
)
from kiosk.registry.domain import ClaimResult, Standing


def test_a_claim_is_granted_waiting_or_held() -> None:
    assert claim_outcome(ClaimResult(Standing.SEATED, newly_granted=True)) == "granted"
    assert claim_outcome(ClaimResult(Standing.WAITING, position=3)) == "waiting"
    assert claim_outcome(ClaimResult(Standing.SEATED)) == "held"  # a course added to a seat
    assert claim_outcome(ClaimResult(Standing.OFFERED)) == "held"  # a seat held for them


def test_made_up_methods_and_unknown_paths_share_one_label() -> None:
    assert method_label("GET") == "GET" and method_label("POST") == "POST"
    assert method_label("BREW") == method_label("PROPFIND") == "other"
    assert endpoint_label("api.claim") == "api.claim"
    assert endpoint_label(None) == "unmatched"


@pytest.mark.parametrize(("status", "label"), [(200, "2xx"), (302, "3xx"), (404, "4xx"),
                                               (429, "4xx"), (503, "5xx")])
def test_a_status_is_counted_by_its_class(status: int, label: str) -> None:
    assert status_label(status) == label


def test_only_the_bearer_token_itself_is_let_in() -> None:
    token = "t" * 40
    assert authorised(f"Bearer {token}", token)
    assert authorised(f"bearer {token}", token)  # the scheme is not case-sensitive
    for header in ("", token, f"Basic {token}", f"Bearer {token[:-1]}", f"Bearer {token}t",
                   "Bearer ", "Bearer tëst"):
        assert not authorised(header, token), header
