"""Fictional patrons for `kiosk demo` only, so that the coordinator's dashboard, the desk and
the waiting list have something to show: sign-ups spread over the last 60 days, across the
libraries, with courses chosen and a few on the waiting list. Never used by a real registry:
`kiosk registry serve` and the terminal do not call it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import func, select

from .domain import NewPatron, RegistryError
from .passwords import hash_password
from .services import RegistryService
from .store import Patron

FIRST = ("Emma", "Lucas", "Marie", "Noah", "Louise", "Arthur", "Elise", "Jules", "Lena",
         "Victor", "Fatima", "Mohamed", "Sofie", "Pieter", "Camille", "Youssef", "Nathalie",
         "Jan", "Ines", "Koen", "Aïcha", "Thomas", "Hanne", "Olivier", "Ana", "Bram", "Zoë")
LAST = ("Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
        "Wouters", "De Smet", "Dubois", "Lambert", "Dupont", "Martin", "El Amrani", "Vermeulen",
        "Van den Broeck", "Leclercq", "Nowak", "Öztürk", "Declercq", "Michiels")
PASSWORD = "demo-patron"  # every sample patron's (README, "The demo")


def has_patrons(service: RegistryService) -> bool:
    with service.store.read() as s:
        return (s.scalar(select(func.count()).select_from(Patron)) or 0) > 0


def add_sample_patrons(service: RegistryService, count: int, now: datetime,
                       seed: int = 2026) -> int:
    """Register `count` sample patrons if the registry has none yet; answers how many.

    In about a second for the default 80: they all share one password, hashed once
    (argon2 costs ~60 ms a time, which would make `kiosk demo` miss its 3 s to the first
    page), and their courses are claimed for them, not through a log-in (another hash)."""
    if has_patrons(service):
        return 0
    rng = random.Random(seed)
    libraries = [(library.code, institution.code) for institution in service.institutions()
                 for library in institution.libraries]
    slugs = [course.slug for course in service.catalogue("en").courses]
    moment = [now]
    sampler = RegistryService(service.store, clock=lambda: moment[0],
                              hash_password=cache(hash_password))
    made = 0
    for n in range(count):
        # More sign-ups in the first weeks of the programme, fewer later.
        moment[0] = now - timedelta(days=59 * rng.random() ** 0.7, hours=rng.randint(0, 8))
        library, institution = rng.choice(libraries)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        language = rng.choice(("fr", "nl", "en") if institution == "MUN" else
                              ("nl", "nl", "nl", "fr", "en"))
        born = now.date().replace(year=now.year - rng.randint(18, 84)) - timedelta(
            days=rng.randint(0, 360))
        data = NewPatron(first_name=first, last_name=last,
                         email=f"{first}.{last}.{n}@example.be".lower().replace(" ", ""),
                         birth_date=born.isoformat(), postcode=str(rng.randint(1000, 9992)),
                         library_code=library, password=PASSWORD, phone="",
                         language=language, consent=True)
        try:
            card = sampler.register(data)
        except RegistryError:
            continue  # an invalid sample (a postcode no commune has): skip it
        with sampler.store.write() as s:
            patron_id = s.scalar(select(Patron.id).where(Patron.card_number == card))
            assert patron_id is not None
            for slug in rng.sample(slugs, k=rng.choice((1, 1, 1, 2, 3))):
                moment[0] += timedelta(minutes=rng.randint(1, 5))
                sampler.claim_for(s, patron_id, slug)
        made += 1
    return made
