"""Each institution's sign-up rules, as the coordinator sets them in the console: whether the
form asks for a phone number and a postcode (not asked, optional, required) and the minimum
age. The rules themselves (`SignUpRules`, `validate_new_patron`) are in `domain`.

An institution that was never given a minimum age has the programme's (the registry's
MIN_AGE setting), so a registry upgraded to this keeps its sign-up as it was. A change counts
for sign-ups from then on: existing accounts are neither checked again nor changed. Each
change is audited as "settings_changed" with the values before and after.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from .context import RegistryContext
from .domain import FieldRule, SignUpRules, validate_sign_up_rules
from .libraries_admin import institution_row
from .staff import record
from .store import Institution


class SignUpRulesBook:
    """`min_age`: the programme's minimum age, for institutions that have none of their own."""

    def __init__(self, ctx: RegistryContext, *, min_age: int):
        self.ctx = ctx
        self.min_age = min_age

    def of(self, institution: Institution) -> SignUpRules:
        """An institution's rules, from its row (in the caller's transaction)."""
        return SignUpRules(phone=FieldRule(institution.sign_up_phone),
                           postcode=FieldRule(institution.sign_up_postcode),
                           min_age=institution.min_age or self.min_age)

    def for_institution(self, s: Session, code: str | None) -> SignUpRules:
        """The rules of an institution (a code read from the store); the programme's
        defaults for None: no library offered was chosen (its sign-up is refused for that
        anyway)."""
        institution = None if code is None else institution_row(s, code)
        return self.of(institution) if institution is not None \
            else SignUpRules(min_age=self.min_age)

    def rules(self, code: str) -> SignUpRules:
        with self.ctx.store.read() as s:
            return self.of(institution_row(s, code))

    def set_rules(self, code: str, phone: str, postcode: str, min_age: object, *,
                  actor: str, where: str = "") -> bool:
        """Checked first (field codes "phone", "postcode", "min_age"); answers whether
        anything changed."""
        clean = validate_sign_up_rules(phone, postcode, min_age)
        with self.ctx.store.write() as s:
            institution = institution_row(s, code)
            old = self.of(institution)
            before = {"phone": str(old.phone), "postcode": str(old.postcode),
                      "min_age": old.min_age}
            after = {"phone": str(clean.phone), "postcode": str(clean.postcode),
                     "min_age": clean.min_age}
            keys = sorted(k for k in after if before[k] != after[k])
            if not keys:
                return False
            institution.sign_up_phone = str(clean.phone)
            institution.sign_up_postcode = str(clean.postcode)
            institution.min_age = clean.min_age
            record(s, self.ctx.clock(), actor, "settings_changed", where=where,
                   institution=code, part="sign_up",
                   before={k: before[k] for k in keys}, after={k: after[k] for k in keys})
            return True

