"""What a seat given up becomes, as the confirmation pages say it before it is done
(kiosk.registry.promotion.freed_seat): the programme's policy, the line, the cap."""

from __future__ import annotations

from kiosk.registry.domain import ProgrammeStatus
from kiosk.registry.promotion import FreedSeat, freed_seat


def test_under_grant_the_next_in_line_has_the_seat_at_once() -> None:
    assert freed_seat(ProgrammeStatus(cap=10, seats_taken=10, waiting=3)) is FreedSeat.GIVEN


def test_under_offer_and_hold_the_seat_is_held_for_the_next_in_line() -> None:
    programme = ProgrammeStatus(cap=10, seats_taken=10, waiting=3, promotion="offer")
    assert freed_seat(programme) is FreedSeat.OFFERED


def test_with_nobody_waiting_the_seat_stays_free_whatever_the_policy() -> None:
    for policy in ("grant", "offer"):
        programme = ProgrammeStatus(cap=10, seats_taken=4, waiting=0, promotion=policy)
        assert freed_seat(programme) is FreedSeat.STAYS_FREE


def test_above_a_lowered_cap_the_seat_is_not_given_again() -> None:
    # Cap lowered from 12 to 10 with 12 seats held: one seat given up leaves 11, still over.
    programme = ProgrammeStatus(cap=10, seats_taken=12, waiting=5, promotion="offer")
    assert freed_seat(programme) is FreedSeat.NOT_REFILLED


def test_the_seat_that_brings_the_programme_back_to_its_cap_is_not_given_again_either() -> None:
    assert freed_seat(ProgrammeStatus(cap=10, seats_taken=11, waiting=5)) is \
        FreedSeat.NOT_REFILLED
    assert freed_seat(ProgrammeStatus(cap=10, seats_taken=10, waiting=5)) is FreedSeat.GIVEN
