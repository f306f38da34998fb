"""The coordinator's settings: how freed seats are given (grant or offer, offer days, fair
share and quotas), and per institution the opening days and the verification policy.

Use cases only (the rules are in `promotion`); each change is one transaction under the
programme lock, audited as "settings_changed" with the values before and after, and followed
by a promotion: a raised quota or fair share turned off may let someone in line take a seat.

Pending accounts keep what they were told: each keeps the number of days it was given at
sign-up, so new days count for accounts made from then on; and switching to "open" leaves
them pending: they were asked to show a document, and activating them unseen would skip that
check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from . import ledger, promotion
from .context import RegistryContext
from .domain import RegistryError
from .staff import record
from .store import THE_PROGRAMME, Institution, Programme


@dataclass(frozen=True)
class InstitutionSettings:
    code: str
    names: dict[str, str]
    seat_quota: int | None
    seats_held: int  # seated + offered now
    opening_days: tuple[int, ...]
    verification: str
    pending_days: int


@dataclass(frozen=True)
class ProgrammeSettings:
    cap: int
    seats_taken: int
    promotion: str
    offer_days: int
    fair_share: bool
    institutions: list[InstitutionSettings]


class Policies:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx
        self.store = ctx.store

    def settings(self) -> ProgrammeSettings:
        with self.store.read() as s:
            prog = s.execute(select(Programme.cap, Programme.seats_taken, Programme.promotion,
                                    Programme.offer_days, Programme.fair_share)
                             .where(THE_PROGRAMME)).first()
            if prog is None:
                raise RegistryError("not_set_up")
            held = ledger.seats_held(s)
            rows = s.scalars(select(Institution).order_by(Institution.code)).all()
            return ProgrammeSettings(
                cap=prog.cap, seats_taken=prog.seats_taken, promotion=prog.promotion,
                offer_days=prog.offer_days, fair_share=bool(prog.fair_share),
                institutions=[InstitutionSettings(
                    code=i.code, names=dict(i.names), seat_quota=i.seat_quota,
                    seats_held=held.get(i.id, 0),
                    opening_days=promotion.opening_days_or_default(i.opening_days),
                    verification=i.verification or "open", pending_days=i.pending_days,
                ) for i in rows])

    def set_seat_policy(self, promotion_policy: str, offer_days: object, fair_share: bool,
                        quotas: Mapping[str, object], *, actor: str,
                        where: str = "") -> int:
        """Change how freed seats are given; answers how many in line were served at once
        (a quota raised, fair share turned off). Offers already made keep their end."""
        clock = self.ctx.clock
        with self.store.write() as s:
            seats = self.ctx.seats(s)
            prog = seats.counts()
            rows = {i.code: i for i in s.scalars(select(Institution)).all()}
            clean = promotion.validate_seat_policy(promotion_policy, offer_days, fair_share,
                                                   quotas, rows)
            before: dict[str, object] = {"promotion": prog.promotion,
                                         "offer_days": prog.offer_days,
                                         "fair_share": bool(prog.fair_share)}
            after: dict[str, object] = {"promotion": clean.promotion,
                                        "offer_days": clean.offer_days,
                                        "fair_share": clean.fair_share}
            for code, quota in clean.quotas.items():
                before[f"quota_{code}"] = rows[code].seat_quota
                after[f"quota_{code}"] = quota
            changed = {k for k in after if before[k] != after[k]}
            if not changed:
                return 0
            seats.set_policy(clean.promotion, clean.offer_days, clean.fair_share)
            for code, quota in clean.quotas.items():
                rows[code].seat_quota = quota
            promoted = seats.promote()
            record(s, clock(), actor, "settings_changed", where=where, part="seats",
                   before={k: before[k] for k in sorted(changed)},
                   after={k: after[k] for k in sorted(changed)}, promoted=promoted)
            return promoted

    def set_institution_policies(self, changes: Mapping[str, tuple[list[object], str, object]],
                                 *, actor: str, where: str = "") -> int:
        """Opening days, verification policy and pending days per institution code, all
        checked before any is stored (field codes: `<field>_<CODE>`); answers how many
        institutions changed. New opening days count for offers made from now on."""
        clock = self.ctx.clock
        with self.store.write() as s:
            self.ctx.seats(s)  # offers read opening days under this lock
            rows = {i.code: i for i in s.scalars(select(Institution)).all()}
            errors: dict[str, str] = {}
            clean: dict[str, promotion.InstitutionPolicy] = {}
            for code, (days, verification, pending_days) in changes.items():
                if code not in rows:
                    errors[f"institution_{code}"] = "institution_unknown"
                    continue
                try:
                    clean[code] = promotion.validate_institution_policy(days, verification,
                                                                        pending_days)
                except RegistryError as refusal:
                    errors.update({f"{name}_{code}": problem
                                   for name, problem in refusal.fields.items()})
            if errors:
                raise RegistryError("invalid", errors)
            changed = 0
            for code, policy in clean.items():
                row = rows[code]
                before = {"opening_days": list(promotion.opening_days_or_default(
                    row.opening_days)), "verification": row.verification or "open",
                    "pending_days": row.pending_days}
                after = {"opening_days": list(policy.opening_days),
                         "verification": policy.verification,
                         "pending_days": policy.pending_days}
                keys = sorted(k for k in after if before[k] != after[k])
                if not keys:
                    continue
                row.opening_days = list(policy.opening_days)
                row.verification = policy.verification
                row.pending_days = policy.pending_days
                record(s, clock(), actor, "settings_changed", where=where, institution=code,
                       part="institution", before={k: before[k] for k in keys},
                       after={k: after[k] for k in keys})
                changed += 1
            return changed
