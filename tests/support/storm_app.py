"""The central registry as gunicorn serves it, for the storm tests and the load benchmark.

`gunicorn 'tests.support.storm_app:app()'` from the repository root. Settings come from
KIOSK_STORM_* variables (not KIOSK_<key>: TESTING and the test-only knobs below are not
Config keys, so `from_environment` would not read them):

* KIOSK_STORM_DATABASE_URL  the registry database (migrated and seeded beforehand)
* KIOSK_STORM_GUARD         "1" (default) or "0": claims made the naive, unguarded way
                            (tests/support/unguarded.py), the negative control
* KIOSK_STORM_ISOLATION     DATABASE_ISOLATION, "READ COMMITTED" by default
* KIOSK_STORM_RACE_PAUSE    seconds the unguarded claim waits between check and write
* KIOSK_STORM_STALE_AFTER   seconds: after which a "running" Idempotency-Key may be taken
                            over (default of the product: 60)
* KIOSK_STORM_MAIL          "1": e-mail notices queued, as with SMTP_HOST set (no sender runs:
                            they stay in the outbox); "0" (default): mail off
* KIOSK_STORM_INSTANCE      an instance folder, so no kiosk.cfg of the checkout is read
                            (unset: a new temporary one)

Patron sessions live 2 hours here (idle and absolute): the storm's patrons are logged in
once, before the storm, and a long storm on a slow machine must not log them out midway.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import Flask

from kiosk.registry import notices
from tests.support import unguarded


def app() -> Flask:
    from tests.support.factories import build_app

    env = os.environ
    folder = env.get("KIOSK_STORM_INSTANCE") or tempfile.mkdtemp(prefix="kiosk-storm-")
    flask_app = build_app(
        Path(folder),
        registry=True,
        SECRET_KEY="storm-test-secret",
        DATABASE_URL=env["KIOSK_STORM_DATABASE_URL"],
        AUTO_MIGRATE=False,
        SEED_DEMO=False,
        DATABASE_ISOLATION=env.get("KIOSK_STORM_ISOLATION", "READ COMMITTED"),
        # The storm's workers run up to 16 threads: a connection each kept open, one more each
        # in a burst, as `kiosk registry doctor` tells an operator who runs that many.
        DATABASE_POOL_SIZE=16,
        DATABASE_MAX_OVERFLOW=16,
    )
    service = flask_app.extensions["registry_service"]
    if env.get("KIOSK_STORM_GUARD", "1") == "0":
        unguarded.install(service, float(env.get("KIOSK_STORM_RACE_PAUSE", "0") or 0))
    if env.get("KIOSK_STORM_MAIL", "0") == "1":
        notices.enable(service.store, True)
    service.session_idle = service.session_max = timedelta(hours=2)
    stale = env.get("KIOSK_STORM_STALE_AFTER")
    if stale:
        flask_app.extensions["registry_idempotency"].stale_after = timedelta(seconds=float(stale))
    return flask_app
