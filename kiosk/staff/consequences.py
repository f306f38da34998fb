"""What a staff action that cannot be undone will do, said on its confirmation page before it
is done: in the staff member's language, by the programme's actual seat rules
(kiosk.registry.promotion.freed_seat, the offer days of the settings), about the patron, the
course or the terminal by name."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import ngettext

from ..registry.domain import PatronStatus, ProgrammeStatus, Standing, TerminalView
from ..registry.promotion import FreedSeat, freed_seat


def seat_goes(programme: ProgrammeStatus, offer_days: int) -> str:
    """Where a seat given up goes now."""
    match freed_seat(programme):
        case FreedSeat.GIVEN:
            return _("The seat goes at once to the next in line.")
        case FreedSeat.OFFERED:
            return ngettext("The seat is offered to the next in line, who has %(num)s opening "
                            "day to take it.",
                            "The seat is offered to the next in line, who has %(num)s opening "
                            "days to take it.", offer_days)
        case FreedSeat.STAYS_FREE:
            return _("Nobody is waiting: the seat stays free for the next patron who enrols.")
        case FreedSeat.NOT_REFILLED:
            return _("The programme holds more seats than its cap: this seat is not given "
                     "again.")


def back_of_the_line(name: str) -> str:
    return _("If %(name)s changes their mind, they enrol again: at the back of the line if "
             "the programme is full.", name=name)


def withdraw(name: str, status: PatronStatus, slug: str, programme: ProgrammeStatus,
             offer_days: int) -> list[str]:
    """One course stopped; the last one takes the patron's place with it."""
    if any(e.course_slug != slug for e in status.enrolments):
        return [_("%(name)s keeps their other courses and their place in the programme.",
                  name=name)]
    if status.standing is Standing.SEATED:
        return [_("It is their only course: %(name)s also loses their seat.", name=name),
                seat_goes(programme, offer_days), back_of_the_line(name)]
    if status.standing is Standing.OFFERED:
        return [_("It is their only course: %(name)s also loses the seat offered to them.",
                  name=name), seat_goes(programme, offer_days), back_of_the_line(name)]
    if status.standing is Standing.WAITING:
        return [_("It is their only course: %(name)s also leaves the waiting list (place "
                  "%(position)s).", name=name, position=status.position),
                back_of_the_line(name)]
    return []


def give_up_seat(name: str, programme: ProgrammeStatus, offer_days: int) -> list[str]:
    return [_("%(name)s loses their seat and every course.", name=name),
            seat_goes(programme, offer_days), back_of_the_line(name)]


def leave_waiting_list(name: str, status: PatronStatus) -> list[str]:
    return [_("%(name)s loses place %(position)s in line and their chosen courses.",
              name=name, position=status.position), back_of_the_line(name)]


def retire_course(enrolments: int, seconds: int) -> list[str]:
    kept = (ngettext("%(num)s patron who chose it keeps it among their courses.",
                     "%(num)s patrons who chose it keep it among their courses.", enrolments)
            if enrolments else _("No patron has chosen it."))
    return [_("Kiosks stop offering it within %(seconds)s seconds.", seconds=seconds), kept,
            _("You can offer it again later with “Offer again”.")]


def revoke_terminal(terminal: TerminalView, library: str) -> list[str]:
    return [_("The kiosk “%(name)s” at %(library)s can no longer reach the registry: it stops "
              "serving patrons at once.", name=terminal.name, library=library),
            _("This cannot be undone. To bring the PC back, give it a new token with `kiosk "
              "registry add-terminal`.")]
