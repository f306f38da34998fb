"""The role matrix's world (tests/integration/test_role_matrix.py, also used by the staff
CSRF, staff-on-the-registry and staff-browser tests): what the staff pages act on, all of
Antwerpen, and the staff pages of an app read from its URL map."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select
from werkzeug.routing import Rule

from kiosk.registry.roles import Permission
from kiosk.registry.store import Patron

from .factories import add_patron, patron_data

STAFF = {"librarian_a": "an.peeters", "librarian_b": "els.maes", "coordinator": "coordinator",
         "it_admin": "it.support"}
# Views every logged-in staff member has (no permission of their own).
OPEN_TO_STAFF = {"staff.home", "staff.password"}  # the start page, one's own password


@dataclass
class World:
    app: Flask
    patron_id: int  # a patron of Antwerpen (ANT), seated
    card: str
    terminal_token: str
    terminal_id: int
    waiting_id: int = 0  # another patron of ANT, on the waiting list

    def args(self, rule: Rule) -> dict[str, object]:
        """Values for the rule's variables: objects that exist, belonging to institution A."""
        values: dict[str, object] = {"lang": "en"}
        for name in rule.arguments - {"lang"}:
            if name not in SAMPLES:
                raise AssertionError(f"the role matrix needs a sample value for <{name}> "
                                     f"in {rule.rule}: add it to SAMPLES")
            values[name] = SAMPLES[name](self)
        if (rule.endpoint.startswith("staff.seats.")
                or rule.endpoint == "staff.desk.leave_waiting_list") and "patron_id" in values:
            values["patron_id"] = self.waiting_id  # waiting-list entries: someone who waits
        return values


SAMPLES: dict[str, Callable[[World], object]] = {
    "terminal_id": lambda w: w.terminal_id,
    "patron_id": lambda w: w.patron_id,
    "card": lambda w: w.card,
    "slug": lambda w: "spanish-beginners",
    "course_slug": lambda w: "spanish-beginners",
    "flag_id": lambda w: 1,
    "entry_id": lambda w: w.waiting_id,
    "username": lambda w: "an.peeters",
    "kind": lambda w: "seats",
    "export": lambda w: "seats",
    "institution": lambda w: "ANT",
    "library": lambda w: "ANT-PERMEKE",
    "by": lambda w: "library",
}


# Done last: after an erasure the patron's other pages would be "not found"; a retired
# institution or library is no longer offered to the other pages.
LAST = {"staff.desk.erase", "staff.libraries.retire_institution",
        "staff.libraries.retire_library"}
RESET = "staff.practice.reset"


def populate(app: Flask) -> World:
    """What the staff pages act on, all of Antwerpen (ANT): a seated patron, a waiting one,
    a possible duplicate (flag 1), a terminal."""
    service = app.extensions["registry_service"]
    service.set_cap(1, actor="test")
    card, token = add_patron(service, library_code="ANT-PERMEKE", last_name="Matrix")
    service.claim(token, "spanish-beginners")
    waiting_card, waiting_token = add_patron(service, library_code="ANT-HOBOKEN")
    service.claim(waiting_token, "spanish-beginners")
    # The same name and date of birth again: possible-duplicate flag 1, both of ANT.
    service.register(patron_data(library_code="ANT-PERMEKE", last_name="Matrix"))
    with service.store.read() as s:
        ids = dict(s.execute(select(Patron.card_number, Patron.id)).all())
    terminal_token, terminal = service.add_terminal("ANT-PERMEKE", "Matrix", actor="test")
    return World(app, ids[card], card, terminal_token, terminal.id, ids[waiting_card])


def staff_rules(app: Flask) -> list[Rule]:
    """Every staff page but log-out (it refuses nobody: it only ends a session)."""
    rules = [r for r in app.url_map.iter_rules()
             if r.endpoint.startswith("staff.") and r.endpoint != "staff.logout"]
    # The waiting-list pages first: a desk action further on (giving up the seat, say)
    # promotes the waiting patron they act on. The erasure last, and the practice's reset
    # (it removes the whole world) after all.
    return sorted(rules, key=lambda r: (r.endpoint == RESET and "POST" in r.methods,
                                        not r.endpoint.startswith("staff.seats."),
                                        r.endpoint in LAST, r.rule))


def permission_of(app: Flask, rule: Rule) -> Permission | None:
    return getattr(app.view_functions[rule.endpoint], "permission", None)
