"""The one interface a terminal uses to talk to the registry.

`LocalRegistryClient` calls the service layer in the same process (the embedded default);
an HTTP implementation of the same protocol talks to a central registry.
"""

from __future__ import annotations

from typing import Protocol

from .domain import (
    Catalogue,
    ClaimResult,
    CourseView,
    InstitutionView,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
)
from .services import RegistryService


class RegistryClient(Protocol):
    def institutions(self) -> list[InstitutionView]: ...
    def catalogue(self, lang: str) -> Catalogue: ...
    def course(self, slug: str, lang: str) -> CourseView: ...
    def programme_status(self) -> ProgrammeStatus: ...
    def academy_url(self) -> str: ...
    def register(self, data: NewPatron) -> str: ...
    def login(self, identifier: str, password: str) -> tuple[str, PatronView]: ...
    def logout(self, token: str) -> None: ...
    def whoami(self, token: str) -> PatronView: ...
    def claim(self, token: str, course_slug: str) -> ClaimResult: ...
    def status(self, token: str, lang: str) -> PatronStatus: ...
    def withdraw(self, token: str, course_slug: str) -> PatronStatus: ...
    def give_up_seat(self, token: str) -> None: ...
    def leave_waiting_list(self, token: str) -> None: ...
    def my_data(self, token: str, lang: str) -> PatronData: ...
    def maintenance(self) -> Maintenance | None: ...
    def erase_account(self, token: str, password: str) -> None: ...


class LocalRegistryClient:
    """In-process: each call is one use case of the service layer."""

    def __init__(self, service: RegistryService):
        self.service = service

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

    def register(self, data: NewPatron) -> str:
        return self.service.register(data)

    def login(self, identifier: str, password: str) -> tuple[str, PatronView]:
        return self.service.login(identifier, password)

    def logout(self, token: str) -> None:
        self.service.logout(token)

    def whoami(self, token: str) -> PatronView:
        return self.service.whoami(token)

    def claim(self, token: str, course_slug: str) -> ClaimResult:
        return self.service.claim(token, course_slug)

    def status(self, token: str, lang: str) -> PatronStatus:
        return self.service.status(token, lang)

    def withdraw(self, token: str, course_slug: str) -> PatronStatus:
        return self.service.withdraw(token, course_slug)

    def give_up_seat(self, token: str) -> None:
        self.service.give_up_seat(token)

    def leave_waiting_list(self, token: str) -> None:
        self.service.leave_waiting_list(token)

    def my_data(self, token: str, lang: str) -> PatronData:
        return self.service.my_data(token, lang)

    def erase_account(self, token: str, password: str) -> None:
        self.service.erase_account(token, password)

    def maintenance(self) -> Maintenance | None:
        return self.service.maintenance()
