"""The programme's rules without a database."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from kiosk.registry import domain
from kiosk.registry.domain import ClaimDecision, LoginPolicy, RegistryError, Standing

TODAY = date(2026, 11, 23)
LIBS = {"ANT-PERMEKE"}
RULES = domain.SignUpRules()  # the programme's: phone optional, postcode required, 16


def new(**kw: object) -> domain.NewPatron:
    base: dict = dict(first_name="Mia", last_name="Peeters", email="Mia@Example.be",
                      birth_date="1958-3-27", postcode="2000", library_code="ANT-PERMEKE",
                      password="12345678", phone="", language="nl", consent=True)
    base.update(kw)
    return domain.NewPatron(**base)


def errors_of(data: domain.NewPatron) -> dict[str, str]:
    with pytest.raises(RegistryError) as caught:
        domain.validate_new_patron(data, today=TODAY, rules=RULES, library_codes=LIBS)
    assert caught.value.code == "invalid"
    return caught.value.fields


def test_card_number_has_institution_prefix_and_valid_check_digit() -> None:
    card = domain.make_card_number("2101", 12345)
    assert card.startswith("2101") and len(card) == 13
    assert domain.is_valid_card_number(card)
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert not domain.is_valid_card_number(wrong)
    swapped = card[:5] + card[6] + card[5] + card[7:]
    assert swapped == card or not domain.is_valid_card_number(swapped)


def test_card_input_as_typed_or_scanned_is_normalised() -> None:
    assert domain.normalise_card_input(" 2101 0001-2345.7 ") == "210100012345" + "7"
    assert domain.format_card_number("2101000123457") == "2101 0001 23457"


def test_valid_patron_is_cleaned() -> None:
    clean = domain.validate_new_patron(
        new(first_name="  Mia   Lotte ", phone="0470 12 34 56"),
        today=TODAY, rules=RULES, library_codes=LIBS,
    )
    assert clean.email == "mia@example.be"
    assert clean.first_name == "Mia Lotte"
    assert clean.phone == "+32470123456"
    assert clean.birth_date == date(1958, 3, 27)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("first_name", "", "required"),
        ("last_name", "x" * 61, "too_long"),
        ("first_name", "Mia\x00", "invalid_characters"),
        ("email", "not-an-email", "email_invalid"),
        ("email", "", "required"),
        ("birth_date", "", "required"),
        ("birth_date", "1958-2-30", "birth_date_invalid"),
        ("birth_date", "2030-01-01", "birth_date_invalid"),
        ("birth_date", "1850-01-01", "birth_date_invalid"),
        ("birth_date", "2011-01-01", "too_young"),
        ("postcode", "0999", "postcode_invalid"),
        ("postcode", "20000", "postcode_invalid"),
        ("postcode", "", "required"),
        ("library_code", "NOPE", "library_unknown"),
        ("library_code", "", "required"),
        ("phone", "+32 2 123 45 67", "phone_invalid"),  # possible but not allocated
        ("phone", "hello", "phone_invalid"),
        ("password", "1234567", "password_too_short"),
        ("consent", False, "consent_required"),
    ],
)
def test_each_bad_field_has_its_own_code(field: str, value: object, code: str) -> None:
    assert errors_of(new(**{field: value}))[field] == code


def test_all_problems_are_reported_at_once() -> None:
    fields = errors_of(new(first_name="", postcode="12", consent=False))
    assert set(fields) == {"first_name", "postcode", "consent"}


def test_minimum_age_is_on_the_birthday() -> None:
    sixteen_today = date(2010, 11, 23)
    domain.validate_new_patron(new(birth_date=sixteen_today.isoformat()), today=TODAY,
                               rules=RULES, library_codes=LIBS)
    assert errors_of(new(birth_date="2010-11-24"))["birth_date"] == "too_young"


def sign_up(data: domain.NewPatron, **rules: object) -> domain.CleanPatron:
    return domain.validate_new_patron(data, today=TODAY, rules=domain.SignUpRules(**rules),
                                      library_codes=LIBS)


def refusal_under(data: domain.NewPatron, **rules: object) -> dict[str, str]:
    with pytest.raises(RegistryError) as caught:
        sign_up(data, **rules)
    return caught.value.fields


def test_a_required_phone_must_be_given_and_still_be_a_real_number() -> None:
    required = domain.FieldRule.REQUIRED
    assert refusal_under(new(phone="  "), phone=required) == {"phone": "required"}
    assert refusal_under(new(phone="hello"), phone=required) == {"phone": "phone_invalid"}
    assert sign_up(new(phone="0470 12 34 56"), phone=required).phone == "+32470123456"


def test_an_optional_postcode_may_stay_empty_but_not_be_wrong() -> None:
    optional = domain.FieldRule.OPTIONAL
    assert sign_up(new(postcode=""), postcode=optional).postcode == ""
    assert refusal_under(new(postcode="12"), postcode=optional) == {
        "postcode": "postcode_invalid"}


def test_a_field_not_asked_is_stored_empty_whatever_was_sent() -> None:
    not_asked = domain.FieldRule.NOT_ASKED
    clean = sign_up(new(postcode="nonsense\x00", phone="0470 12 34 56"),
                    postcode=not_asked, phone=not_asked)
    assert (clean.postcode, clean.phone) == ("", "")


def test_the_minimum_age_is_the_institutions() -> None:
    fourteen = new(birth_date="2012-11-23")
    assert refusal_under(fourteen) == {"birth_date": "too_young"}  # the programme's 16
    assert sign_up(fourteen, min_age=14).birth_date == date(2012, 11, 23)
    assert refusal_under(new(birth_date="2008-11-24"), min_age=18) == {
        "birth_date": "too_young"}


def test_sign_up_rules_a_coordinator_sets_are_checked_all_at_once() -> None:
    assert domain.validate_sign_up_rules("required", "not_asked", " 18 ") == domain.SignUpRules(
        phone=domain.FieldRule.REQUIRED, postcode=domain.FieldRule.NOT_ASKED, min_age=18)
    with pytest.raises(RegistryError) as caught:
        domain.validate_sign_up_rules("sometimes", "", "11")
    assert caught.value.fields == {"phone": "choice_unknown", "postcode": "choice_unknown",
                                   "min_age": "min_age_invalid"}


@pytest.mark.parametrize(("value", "code"), [
    ("", "required"), ("sixteen", "min_age_invalid"), ("-5", "min_age_invalid"),
    ("11", "min_age_invalid"), ("100", "min_age_invalid"), ("12", None), ("99", None),
])
def test_the_minimum_age_is_a_whole_number_from_12_to_99(value: str, code: str | None) -> None:
    if code is None:
        assert domain.validate_sign_up_rules("optional", "required", value).min_age == int(value)
        return
    with pytest.raises(RegistryError) as caught:
        domain.validate_sign_up_rules("optional", "required", value)
    assert caught.value.fields == {"min_age": code}


def test_brussels_landline_in_an_allocated_range_is_accepted() -> None:
    assert domain.normalise_phone("02 211 02 70") == "+3222110270"


def test_login_policy_locks_after_five_failures_for_fifteen_minutes() -> None:
    policy, now = LoginPolicy(), datetime(2026, 1, 1, 12, 0)
    failures, until = 0, None
    for _ in range(4):
        failures, until = policy.after_failure(failures, now)
        assert until is None
    failures, until = policy.after_failure(failures, now)
    assert until == now + timedelta(minutes=15)
    assert policy.is_locked(until, now + timedelta(minutes=14, seconds=59))
    assert not policy.is_locked(until, now + timedelta(minutes=15))


@pytest.mark.parametrize(
    ("standing", "taken", "cap", "decision"),
    [
        (Standing.NONE, 0, 2000, ClaimDecision.GRANT),
        (Standing.NONE, 1999, 2000, ClaimDecision.GRANT),
        (Standing.NONE, 2000, 2000, ClaimDecision.WAIT),
        (Standing.NONE, 2100, 2000, ClaimDecision.WAIT),  # above a lowered cap
        (Standing.SEATED, 2000, 2000, ClaimDecision.KEEP),  # a second course, same seat
        (Standing.WAITING, 0, 2000, ClaimDecision.KEEP),
    ],
)
def test_claim_decision(standing: Standing, taken: int, cap: int, decision: ClaimDecision) -> None:
    assert domain.decide_claim(standing, taken, cap) is decision


def test_promotion_and_over_cap_counts() -> None:
    assert domain.seats_to_promote(cap=10, seats_taken=7, waiting=5) == 3
    assert domain.seats_to_promote(cap=10, seats_taken=7, waiting=1) == 1
    assert domain.seats_to_promote(cap=10, seats_taken=12, waiting=5) == 0
    assert domain.over_cap(cap=10, seats_taken=12) == 2
    assert domain.over_cap(cap=10, seats_taken=8) == 0


def test_seat_rules_do_not_import_flask() -> None:
    import ast
    from pathlib import Path

    for name in ("domain.py", "services.py", "store.py"):
        tree = ast.parse(Path(domain.__file__).with_name(name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert not imported & {"flask", "flask_babel", "flask_login", "werkzeug"}, name


def test_a_correction_keeps_what_an_account_had_before_the_rules_changed() -> None:
    rules = domain.SignUpRules(phone=domain.FieldRule.REQUIRED,
                               postcode=domain.FieldRule.NOT_ASKED, min_age=18)
    kept = domain.correction_rules(rules, had_phone=False, had_postcode=True, age_checked=False)
    # A phone asked since is not demanded; a postcode no longer asked is not wiped; the age
    # limit is not checked again for a date of birth that stays.
    assert kept == domain.SignUpRules(phone=domain.FieldRule.OPTIONAL,
                                      postcode=domain.FieldRule.OPTIONAL, min_age=0)


def test_a_correction_may_not_empty_a_required_field_and_a_new_birth_date_meets_the_age() -> None:
    rules = domain.SignUpRules(phone=domain.FieldRule.REQUIRED,
                               postcode=domain.FieldRule.REQUIRED, min_age=18)
    held = domain.correction_rules(rules, had_phone=True, had_postcode=True, age_checked=True)
    assert held == rules
