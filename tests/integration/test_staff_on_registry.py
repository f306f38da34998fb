"""The staff pages where they are served in production: the central registry's app
(`kiosk registry serve`), not only the embedded default. Every staff page a role may open
renders there (the registry app has no terminal blueprints, so what the shared templates need
must be set up on it too: a patron's record once failed only there)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.factories import build_app, log_in_staff
from tests.support.role_matrix import STAFF, World, populate, staff_rules


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("registry-staff")
    app = build_app(folder, registry=True)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is a 500 page, as in production
    yield populate(app)
    app.extensions["registry_service"].store.engine.dispose()


@pytest.mark.parametrize("principal", ["coordinator", "librarian_a", "it_admin"])
@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_every_staff_page_renders_on_the_registry(world: World, principal: str,
                                                  lang: str) -> None:
    client = world.app.test_client()
    log_in_staff(client, STAFF[principal], lang)
    opened = 0
    with world.app.test_request_context():
        for rule in staff_rules(world.app):
            if "GET" not in (rule.methods or ()):
                continue
            url = rule.build({**world.args(rule), "lang": lang})[1]
            response = client.get(url)
            assert response.status_code < 500, f"{principal} GET {url}: {response.status_code}"
            if response.status_code == 200 and response.mimetype == "text/html":
                opened += 1
                assert f'lang="{lang}"' in response.get_data(as_text=True)[:200], url
    assert opened >= 3, f"{principal} opened only {opened} staff pages"
