"""The institutions' member systems: their settings (which the coordinator or branch IT set with
`kiosk registry member-system`), and asking one of them about a library card.

Signing a member in is `Accounts.login`'s: it asks here, outside any database transaction
(a slow member system never holds a lock or a connection of ours), then links the card to
its account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath, PureWindowsPath

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .context import RegistryContext
from .days import BELGIUM
from .domain import RegistryError
from .member_system import (
    MemberCheck,
    MemberSystemConfig,
    MemberSystemDown,
    can_log_in,
    check_card,
)
from .staff import record
from .store import Institution, Library, MemberSystem

log = logging.getLogger("kiosk.members")

# Member systems keep local time (the SIP transaction date, a card's expiry day).
MAX_TIMEOUT = 30.0


@dataclass(frozen=True)
class MemberSystemSetting:
    """One institution's member system, as `kiosk registry member-system show` lists it."""

    institution_code: str
    config: MemberSystemConfig
    updated_at: datetime


MIN_TIMEOUT = 0.5
# What `setting_problems` answers, in plain English (the CLI); the staff page shows the codes
# in the staff member's language (kiosk.terminal.messages).
PROBLEMS = {
    "host_invalid": "a host name or address, without spaces",
    "port_invalid": "a port between 1 and 65535",
    "timeout_invalid": f"between {MIN_TIMEOUT:g} and {MAX_TIMEOUT:g} seconds",
    "password_file_needed": "a SIP log-in needs the file that holds its password",
    "password_file_not_absolute": "a full path (the registry's working folder may change)",
    "text_invalid": "no | or control characters",
}


def setting_problems(config: MemberSystemConfig) -> dict[str, str]:
    """What is wrong with these settings ({field: code of PROBLEMS}), before they are
    stored."""
    problems: dict[str, str] = {}
    if not config.host.strip() or any(c.isspace() or not c.isprintable() for c in config.host):
        problems["host"] = "host_invalid"
    if not 1 <= config.port <= 65535:
        problems["port"] = "port_invalid"
    if not MIN_TIMEOUT <= config.timeout <= MAX_TIMEOUT:
        problems["timeout"] = "timeout_invalid"
    if config.login_user and not config.password_file:
        problems["password_file"] = "password_file_needed"
    if config.password_file and not PurePath(config.password_file).is_absolute() \
            and not PureWindowsPath(config.password_file).is_absolute():
        problems["password_file"] = "password_file_not_absolute"
    for name in ("login_user", "location_code", "sip_institution"):
        value = getattr(config, name)
        if any(c in "|\r\n" or not c.isprintable() for c in value):  # SIP2's delimiters
            problems[name] = "text_invalid"
    return problems


class MemberSystems:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    # --- Settings ------------------------------------------------------------------------

    def configure(self, institution_code: str, config: MemberSystemConfig, *,
                  actor: str) -> None:
        problems = setting_problems(config)
        if problems:
            raise RegistryError("invalid", problems)
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            institution = self._institution(s, institution_code)
            row = s.get(MemberSystem, institution.id) or MemberSystem(
                institution_id=institution.id)
            row.host, row.port, row.tls = config.host.strip(), config.port, config.tls
            row.login_user, row.password_file = config.login_user, config.password_file
            row.location_code, row.sip_institution = config.location_code, \
                config.sip_institution
            row.timeout_ms, row.updated_at = round(config.timeout * 1000), now
            s.add(row)
            # The address and account, never the password (it is not even known here).
            record(s, now, actor, "member_system_set", institution=institution.code,
                   address=config.address, login=config.login_user or "-")

    def remove(self, institution_code: str, *, actor: str) -> None:
        with self.ctx.store.write() as s:
            institution = self._institution(s, institution_code)
            if s.get(MemberSystem, institution.id) is None:
                raise RegistryError("not_found")
            s.execute(delete(MemberSystem).where(MemberSystem.institution_id == institution.id))
            record(s, self.ctx.clock(), actor, "member_system_removed",
                   institution=institution.code)

    def settings(self) -> list[MemberSystemSetting]:
        with self.ctx.store.read() as s:
            rows = s.execute(select(MemberSystem, Institution.code)
                             .join(Institution, Institution.id == MemberSystem.institution_id)
                             .order_by(Institution.code)).all()
            return [MemberSystemSetting(code, _config(row), row.updated_at)
                    for row, code in rows]

    def for_library(self, s: Session, library_code: str) -> tuple[int, MemberSystemConfig] | None:
        """(institution id, its member system) for a kiosk at this library, if it has one."""
        row = s.execute(select(MemberSystem)
                        .join(Library, Library.institution_id == MemberSystem.institution_id)
                        .where(Library.code == library_code)).scalar()
        return (row.institution_id, _config(row)) if row is not None else None

    # --- Asking -------------------------------------------------------------------------

    def check(self, institution_code: str, config: MemberSystemConfig, barcode: str,
              pin: str) -> MemberCheck:
        """The member system's word on a card; RegistryError("member_system_unavailable")
        when it gives none (logged with the institution and the reason only)."""
        try:
            return check_card(config, barcode, pin, self.local_now())
        except MemberSystemDown as down:
            log.warning("member system of %s (%s): %s", institution_code, config.address, down)
            raise RegistryError("member_system_unavailable") from down

    def doctor(self) -> list[tuple[str, bool, str]]:
        """(institution, answers?, what happened) for each member system, for `kiosk doctor`."""
        results = []
        for setting in self.settings():
            try:
                results.append((setting.institution_code, True,
                                can_log_in(setting.config, self.local_now())))
            except MemberSystemDown as down:
                results.append((setting.institution_code, False,
                                f"{setting.config.address}: {down}"))
        return results

    def local_now(self) -> datetime:
        return self.ctx.clock().replace(tzinfo=UTC).astimezone(BELGIUM)

    @staticmethod
    def _institution(s: Session, code: str) -> Institution:
        institution = s.scalar(select(Institution).where(Institution.code == code.upper()))
        if institution is None:
            raise RegistryError("invalid", {"institution": "unknown institution"})
        return institution


def _config(row: MemberSystem) -> MemberSystemConfig:
    return MemberSystemConfig(
        host=row.host, port=row.port, tls=row.tls, login_user=row.login_user,
        password_file=row.password_file, location_code=row.location_code,
        sip_institution=row.sip_institution, timeout=row.timeout_ms / 1000)

