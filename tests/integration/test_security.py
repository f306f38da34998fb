"""A shared public PC: each test names the promise it checks, and fails without it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import requests

from kiosk.answer_headers import CSP
from kiosk.registry.domain import RegistryError
from tests.support.factories import IN_CI, add_patron, build_app, patron_data
from tests.support.storm_support import (
    RegistryServer,
    bulk_patrons,
    create_storm_database,
    drop_storm_database,
    prepare_registry,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL)


def test_no_template_has_an_inline_script_or_event_handler() -> None:
    """The CSP forbids inline scripts; an inline one would be dead code in a real browser."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {m.group(0)[:60]}" for m in INLINE_SCRIPT.finditer(text)]
        found += [f"{path.name}: {m.group(0)[-60:]}" for m in EVENT_HANDLER.finditer(text)]
    assert found == []


def test_the_scanner_would_see_an_inline_script_and_a_handler(tmp_path: Path) -> None:
    """The template check above can fail: its patterns match what they must refuse."""
    assert INLINE_SCRIPT.search('<script>alert(1)</script>')
    assert not INLINE_SCRIPT.search('<script src="/static/kiosk.js" defer></script>')
    assert EVENT_HANDLER.search('<button type="button"\n onclick="go()">')
    assert not EVENT_HANDLER.search('<a href="/nl/" data-online="yes">')


def test_every_page_sends_the_strict_content_security_policy(client) -> None:
    response = client.get("/nl/")
    csp = response.headers["Content-Security-Policy"]
    assert csp == CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response.headers["Permissions-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_the_visit_cookie_is_httponly_and_samesite(client) -> None:
    cookie = _visit_cookie(client.get("/nl/"), "kiosk_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on a branch LAN: a Secure cookie would be lost


def test_over_https_the_visit_cookie_is_secure_and_host_prefixed(tmp_path: Path) -> None:
    app = build_app(tmp_path, HTTPS=True)
    response = app.test_client().get("/nl/", base_url="https://kiosk.example.be")
    cookie = _visit_cookie(response, "__Host-kiosk_session=")
    assert "; Secure" in cookie and "; Path=/" in cookie and "Domain=" not in cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_log_out_tells_the_browser_to_clear_its_cache_and_storage(client, registered) -> None:
    assert "Clear-Site-Data" not in client.get("/en/courses/").headers
    response = client.post("/en/logout")
    assert response.status_code == 302
    assert response.headers["Clear-Site-Data"] == '"cache", "storage"'


def test_the_idle_reset_clears_site_data_too(client, registered) -> None:
    response = client.post("/visit/reset")
    assert response.headers["Clear-Site-Data"] == '"cache", "storage"'


def test_log_in_starts_a_new_registry_session_and_log_out_ends_them_all(service) -> None:
    """A new token at each log-in (no fixation); log out ends every session of the patron,
    on every kiosk, not only the one where the button was pressed."""
    card, first = add_patron(service)
    second, _ = service.login(card, patron_data().password)
    assert second != first
    service.whoami(first), service.whoami(second)  # both alive
    service.logout(second)
    for token in (first, second):
        with pytest.raises(RegistryError) as ended:
            service.whoami(token)
        assert ended.value.code == "session_invalid"


def test_log_out_leaves_other_patrons_logged_in(service) -> None:
    _, mine = add_patron(service)
    _, theirs = add_patron(service)
    service.logout(mine)
    assert service.whoami(theirs)


@pytest.mark.postgres
@pytest.mark.slow
def test_wrong_passwords_are_counted_across_worker_processes(postgres_admin) -> None:
    """The count lives in the registry database, not in one process: behind one library IP
    and several gunicorn workers, the 5th wrong password locks the account (429 and
    Retry-After) and every later attempt is refused, while other accounts log in as usual."""
    if sys.platform == "win32":
        if IN_CI:
            pytest.fail("CI must run this test: gunicorn (Linux) is needed")
        pytest.skip("needs gunicorn (Linux)")
    url = create_storm_database(postgres_admin, "bruteforce")
    server = None
    try:
        registry = prepare_registry(url, cap=10, terminals=1)
        victim, other = (p.id for p in bulk_patrons(url, 2))
        cards = _card_numbers(url, [victim, other])
        server = RegistryServer(url, workers=3, threads=1).start()
        headers = {"Authorization": f"Bearer {registry.terminal_tokens[0]}"}
        answers = []
        for attempt in range(7):
            # A new connection each time, so the attempts spread over the worker processes.
            r = requests.post(f"{server.base_url}/api/v1/sessions", headers={
                **headers, "Idempotency-Key": f"wrong-{attempt}"},
                json={"identifier": cards[victim], "password": "not-the-password"}, timeout=30)
            answers.append((r.status_code, r.json()["error"]["code"],
                            r.headers.get("Retry-After")))
        statuses = [a[0] for a in answers]
        assert statuses[:4] == [401] * 4, answers
        assert statuses[4:] == [429] * 3, answers
        assert all(a[1] == "account_locked" and int(a[2]) > 800 for a in answers[4:]), answers
        assert len(server.worker_pids()) == 3
        right = requests.post(f"{server.base_url}/api/v1/sessions", headers={
            **headers, "Idempotency-Key": "other-right"},
            json={"identifier": cards[other], "password": "storm-password"}, timeout=30)
        assert right.status_code == 201, right.text
    finally:
        if server is not None:
            server.stop()
        drop_storm_database(postgres_admin, url)


def _visit_cookie(response, prefix: str) -> str:  # type: ignore[no-untyped-def]
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(prefix)]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def _card_numbers(url: str, ids: list[int]) -> dict[int, str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            "SELECT id, card_number FROM patrons WHERE id = ANY(%s)", (ids,)).fetchall())


def test_the_idle_reset_also_ends_a_staff_log_in_on_this_browser(app, client, service) -> None:  # type: ignore[no-untyped-def]
    """A librarian who used the staff pages on a kiosk and walked away: the reset ends their
    staff session in the registry too, not only the cookie that carried it."""
    from kiosk.registry.domain import RegistryError
    from tests.support.factories import log_in_staff

    log_in_staff(client, "an.peeters")
    with client.session_transaction() as visit:
        token = visit["staff_page_token"]
    assert service.staff.whois(token).username == "an.peeters"
    assert client.post("/visit/reset").status_code in (200, 204, 302)
    with pytest.raises(RegistryError):
        service.staff.whois(token)
    assert client.get("/en/staff/desk").status_code == 302  # to the staff log-in
