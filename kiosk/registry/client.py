"""The one interface a terminal uses to talk to the registry.

`LocalRegistryClient` calls the service layer in the same process (the embedded default);
an HTTP implementation of the same protocol talks to a central registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .domain import (
    AlertChoice,
    Catalogue,
    ClaimOutlook,
    ClaimResult,
    CourseView,
    InstitutionView,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    Registration,
    RegistryError,
)
from .roles import StaffView
from .services import RegistryService


class RegistryClient(Protocol):
    def institutions(self) -> list[InstitutionView]: ...
    def catalogue(self, lang: str) -> Catalogue: ...
    def course(self, slug: str, lang: str) -> CourseView: ...
    def programme_status(self) -> ProgrammeStatus: ...
    def academy_url(self) -> str: ...
    def practice(self) -> bool: ...
    def register(self, data: NewPatron, *, staff_token: str | None = None,
                 identity_checked: bool = False) -> str: ...
    # The same, answering also what the patron must be told (pending, possible duplicate).
    def register_account(self, data: NewPatron, *, staff_token: str | None = None,
                         identity_checked: bool = False) -> Registration: ...
    def login(self, identifier: str, password: str, *, library_code: str = "",
              language: str = "") -> tuple[str, PatronView]:
        """`library_code`: the kiosk's library (whose member system checks a library card;
        over HTTP the terminal's own); `language`: the patron's at the kiosk."""
    def logout(self, token: str) -> None: ...
    def whoami(self, token: str) -> PatronView: ...
    def claim(self, token: str, course_slug: str, *,
              staff_token: str | None = None) -> ClaimResult: ...
    # What a claim would give the patron now: what the confirm page announces.
    def claim_outlook(self, token: str) -> ClaimOutlook: ...
    def status(self, token: str, lang: str) -> PatronStatus: ...
    def withdraw(self, token: str, course_slug: str, *,
                 staff_token: str | None = None) -> PatronStatus: ...
    def give_up_seat(self, token: str, *, staff_token: str | None = None) -> None: ...
    def leave_waiting_list(self, token: str, *, staff_token: str | None = None) -> None: ...
    def my_data(self, token: str, lang: str) -> PatronData: ...
    def maintenance(self) -> Maintenance | None: ...
    def erase_account(self, token: str, password: str) -> None: ...
    def accept_offer(self, token: str) -> PatronStatus: ...
    def decline_offer(self, token: str) -> None: ...
    # The patron's own new password (after a printed one-time password, before all else).
    def change_password(self, token: str, old: str, new: str) -> None: ...
    # "My data": the patron's own e-mail address (with their password) and language for
    # e-mails; answers the fields changed.
    def change_my_details(self, token: str, email: str, language: str,
                          password: str = "") -> tuple[str, ...]: ...
    # Assisted mode: a librarian's session on this kiosk; `staff_token` above tags an action
    # "assisted by" them (a refused or ended staff session refuses the action).
    def staff_login(self, username: str, password: str) -> tuple[str, StaffView]: ...
    def staff_whois(self, staff_token: str) -> StaffView: ...
    def staff_logout(self, staff_token: str) -> None: ...
    def staff_hand_back(self, staff_token: str) -> None: ...
    # E-mails about new courses: the patron's choice of categories, with its own consent.
    def alerts(self, token: str, lang: str) -> AlertChoice: ...
    def choose_alerts(self, token: str, categories: list[str], consent: bool) -> None: ...


class LocalRegistryClient:
    """In-process: each call is one use case of the service layer."""

    def __init__(self, service: RegistryService, where: Callable[[], str] = lambda: ""):
        self.service = service
        self._where = where  # the kiosk a sign-up or staff action comes from, for the audit log

    def _assistant(self, staff_token: str | None) -> StaffView | None:
        return self.service.assist.assistant(staff_token) if staff_token else None

    def institutions(self) -> list[InstitutionView]:
        return self.service.institutions()

    def catalogue(self, lang: str) -> Catalogue:
        return self.service.catalogue(lang)

    def course(self, slug: str, lang: str) -> CourseView:
        return self.service.course(slug, lang)

    def programme_status(self) -> ProgrammeStatus:
        return self.service.programme_status()

    def academy_url(self) -> str:
        return self.service.academy_url()

    def practice(self) -> bool:
        return self.service.practice.active()

    def register(self, data: NewPatron, *, staff_token: str | None = None,
                 identity_checked: bool = False) -> str:
        return self.register_account(data, staff_token=staff_token,
                                     identity_checked=identity_checked).card_number

    def register_account(self, data: NewPatron, *, staff_token: str | None = None,
                         identity_checked: bool = False) -> Registration:
        if identity_checked and not staff_token:  # as over HTTP: only a librarian says so
            raise RegistryError("invalid", {"identity_checked": "staff_only"})
        return self.service.register_account(data, assisted_by=self._assistant(staff_token),
                                             identity_checked=identity_checked,
                                             where=self._where())

    def login(self, identifier: str, password: str, *, library_code: str = "",
              language: str = "") -> tuple[str, PatronView]:
        return self.service.login(identifier, password, library_code=library_code,
                                  language=language)

    def logout(self, token: str) -> None:
        self.service.logout(token)

    def whoami(self, token: str) -> PatronView:
        return self.service.whoami(token)

    def claim(self, token: str, course_slug: str, *,
              staff_token: str | None = None) -> ClaimResult:
        return self.service.claim(token, course_slug, assisted_by=self._assistant(staff_token),
                                  where=self._where())

    def claim_outlook(self, token: str) -> ClaimOutlook:
        return self.service.claim_outlook(token)

    def status(self, token: str, lang: str) -> PatronStatus:
        return self.service.status(token, lang)

    def withdraw(self, token: str, course_slug: str, *,
                 staff_token: str | None = None) -> PatronStatus:
        return self.service.withdraw(token, course_slug,
                                     assisted_by=self._assistant(staff_token),
                                     where=self._where())

    def give_up_seat(self, token: str, *, staff_token: str | None = None) -> None:
        self.service.give_up_seat(token, assisted_by=self._assistant(staff_token),
                                  where=self._where())

    def leave_waiting_list(self, token: str, *, staff_token: str | None = None) -> None:
        self.service.leave_waiting_list(token, assisted_by=self._assistant(staff_token),
                                        where=self._where())

    def my_data(self, token: str, lang: str) -> PatronData:
        return self.service.my_data(token, lang)

    def erase_account(self, token: str, password: str) -> None:
        self.service.erase_account(token, password)

    def accept_offer(self, token: str) -> PatronStatus:
        return self.service.accept_offer(token)

    def decline_offer(self, token: str) -> None:
        self.service.decline_offer(token)

    def change_password(self, token: str, old: str, new: str) -> None:
        self.service.change_password(token, old, new)

    def change_my_details(self, token: str, email: str, language: str,
                          password: str = "") -> tuple[str, ...]:
        return self.service.change_my_details(token, email, language, password)

    def maintenance(self) -> Maintenance | None:
        return self.service.maintenance()

    def staff_login(self, username: str, password: str) -> tuple[str, StaffView]:
        return self.service.assist.start(username, password, where=self._where())

    def staff_whois(self, staff_token: str) -> StaffView:
        return self.service.assist.assistant(staff_token)

    def staff_logout(self, staff_token: str) -> None:
        if staff_token:
            self.service.staff.logout(staff_token, where=self._where())

    def staff_hand_back(self, staff_token: str) -> None:
        self.service.staff.hand_back(staff_token, where=self._where())

    def alerts(self, token: str, lang: str) -> AlertChoice:
        return self.service.alerts.choice(token, lang)

    def choose_alerts(self, token: str, categories: list[str], consent: bool) -> None:
        self.service.alerts.choose(token, categories, consent)
