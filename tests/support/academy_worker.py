"""A registry process for the crash test: claims, gives up and withdraws for the patrons
whose session tokens it is given, with the academy sender running beside it, printing each
step it committed. Run: python -m tests.support.academy_worker DB_URL SCIM_URL TOKEN_FILE
TOKENS_JSON SEED STEPS (the test kills it with SIGKILL mid-run)."""

from __future__ import annotations

import json
import random
import sys

from kiosk.registry.academy_link import ScimConfig
from kiosk.registry.academy_sender import start_sender
from kiosk.registry.domain import RegistryError
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Store, make_engine

COURSES = ("excel-basics", "word-basics", "email-outlook")


def main(db_url: str, scim_url: str, token_file: str, tokens_json: str, seed: str,
         steps: str) -> None:
    service = RegistryService(Store(make_engine(db_url)))
    service.academy.enabled = True
    token = open(token_file, encoding="utf-8").read().strip()
    start_sender(service.store, ScimConfig(scim_url, token, timeout=2.0), service.clock,
                 every=0.05)
    tokens = json.loads(open(tokens_json, encoding="utf-8").read())
    rng = random.Random(int(seed))
    for step in range(int(steps)):
        patron = rng.choice(tokens)
        action = rng.random()
        try:
            if action < 0.6:
                service.claim(patron, rng.choice(COURSES))
            elif action < 0.8:
                service.give_up_seat(patron)
            else:
                service.withdraw(patron, rng.choice(COURSES))
        except RegistryError:
            pass  # not seated, not enrolled: nothing changed
        print(f"step {step}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
