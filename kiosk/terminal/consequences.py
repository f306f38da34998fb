"""What a patron's change that cannot be undone will do, said before it is done (the
confirmation pages of kiosk.terminal.enrol): in the patron's language, by the programme's
actual seat rules (kiosk.registry.promotion.freed_seat), never a promise the rules do not keep
("the next person gets it" when nobody waits, "at once" under offer-and-hold)."""

from __future__ import annotations

from flask_babel import gettext as _

from ..registry.domain import PatronStatus, ProgrammeStatus, Standing
from ..registry.promotion import FreedSeat, freed_seat


def seat_goes(programme: ProgrammeStatus) -> str:
    """Where a seat given up goes now."""
    return {
        FreedSeat.GIVEN: lambda: _("The seat goes at once to the next person on the waiting "
                                   "list."),
        FreedSeat.OFFERED: lambda: _("The seat is kept for the next person on the waiting "
                                     "list, who gets a few days to take it."),
        FreedSeat.STAYS_FREE: lambda: _("Nobody is waiting now: the seat stays free for the "
                                        "next person who enrols."),
        FreedSeat.NOT_REFILLED: lambda: _("The programme has fewer seats now, so nobody else "
                                          "gets this seat."),
    }[freed_seat(programme)]()


def back_of_the_line() -> str:
    return _("If you change your mind, you can enrol again. If the programme is full then, "
             "you join the back of the waiting list.")


def decline(programme: ProgrammeStatus) -> list[str]:
    """"No thanks" to a seat held for the patron: the seat and the course choice go."""
    return [_("Your course choice ends."), seat_goes(programme), back_of_the_line()]


def give_up(programme: ProgrammeStatus) -> list[str]:
    if freed_seat(programme) is FreedSeat.GIVEN:
        first = _("All your courses stop and your seat goes to the next person on the waiting "
                  "list.")
        return [first, back_of_the_line()]
    return [_("All your courses stop."), seat_goes(programme), back_of_the_line()]


def leave() -> list[str]:
    return [_("You lose your place in line. You can join again later, at the back of the "
              "line."), _("Your chosen courses are removed too.")]


def withdraw(status: PatronStatus, slug: str, programme: ProgrammeStatus) -> list[str]:
    """One course stopped: only that, unless it is the last one, which takes the place
    (seat, seat kept for them, or place in line) with it."""
    if any(e.course_slug != slug for e in status.enrolments):
        return [_("You keep your other courses and your place in the programme.")]
    if status.standing is Standing.SEATED:
        return [_("It is your only course, so you also give up your seat."),
                seat_goes(programme), back_of_the_line()]
    if status.standing is Standing.OFFERED:
        return [_("It is your only course, so you also give up the seat kept for you."),
                seat_goes(programme), back_of_the_line()]
    if status.standing is Standing.WAITING:
        return [_("It is your only course, so you also leave the waiting list."),
                _("You lose your place in line. You can join again later, at the back of the "
                  "line.")]
    return []
