"""The academy's platform over SCIM 2.0 (RFC 7643/7644): find, create, replace, delete our
users, each call with a deadline. scim2-client does the protocol and checks the payloads,
httpx2 carries it. No database here, no personal data in errors or logs.

Whose fault a failure is (the sender decides what it costs):
- `LinkDown`: the platform cannot be used at all (no connection, a timeout, our token
  refused, a 5xx, an answer that is not SCIM): every change would fail alike;
- `Refused`: the platform refused this user (a 4xx about its content, a conflict).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .academy import Account

if TYPE_CHECKING:
    from scim2_models import SearchRequest, User

# httpx2 logs every request at INFO: one line per patron change is noise, not a log.
logging.getLogger("httpx2").setLevel(logging.WARNING)

# Our users carry externalIds that start so (academy.external_id): the sync lists them.
OURS = "kiosk-"
PAGE = 100
# HTTP answers that say "the platform, not this user": try again later, count nothing bad.
_DOWN_STATUSES = {401, 403, 404, 408, 429}


@functools.cache
def _lib() -> SimpleNamespace:
    """scim2-client, scim2-models and httpx2, imported on first use (not at module level):
    their pydantic models take about half a second to build, which `kiosk demo`'s first
    page and every other `kiosk` command do without."""
    import httpx2
    import scim2_models
    from scim2_client import SCIMClientException
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_client.errors import RequestNetworkException, SCIMResponseException

    return SimpleNamespace(
        httpx2=httpx2, m=scim2_models, SyncSCIMClient=SyncSCIMClient,
        errors=(SCIMClientException, scim2_models.SCIMException, httpx2.HTTPError),
        network=(RequestNetworkException, httpx2.HTTPError), response=SCIMResponseException)


class LinkDown(Exception):
    """The platform could not be used; `str()` is a short reason without personal data."""


class Refused(Exception):
    """The platform refused this user; `str()` is a short reason without personal data."""


@dataclass(frozen=True)
class ScimConfig:
    url: str
    token: str
    timeout: float = 10.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ScimConfig | None:
        """The platform of the app's configuration; None when ACADEMY_SCIM_URL is empty
        (the link is off). The token is read from ACADEMY_SCIM_TOKEN_FILE (config.check has
        made sure it can be)."""
        url = (cfg.get("ACADEMY_SCIM_URL") or "").strip()
        if not url:
            return None
        token_file = (cfg.get("ACADEMY_SCIM_TOKEN_FILE") or "").strip()
        token = Path(token_file).read_text(encoding="utf-8").strip() if token_file else ""
        return cls(url=url.rstrip("/"), token=token,
                   timeout=float(cfg.get("ACADEMY_TIMEOUT", 10)))

    def __repr__(self) -> str:  # never the token, in a traceback or a log
        return f"ScimConfig(url={self.url!r}, timeout={self.timeout})"


def short_error(exc: BaseException) -> str:
    """The kind of error and the HTTP status, never the platform's text (it may quote the
    user)."""
    status = _status(exc)
    name = type(exc).__name__
    return (f"{name} {status}" if status else name)[:200]


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, _lib().m.SCIMException):
        return int(exc.status)
    source = getattr(exc, "source", None)
    code = getattr(source, "status_code", None)
    return int(code) if isinstance(code, int) else None


def _classify(exc: Exception) -> Exception:
    """LinkDown or Refused for a failed call (see the module's docstring)."""
    reason = short_error(exc)
    status = _status(exc)
    if isinstance(exc, _lib().network):
        return LinkDown(reason)
    if status is not None and (status in _DOWN_STATUSES or status >= 500):
        return LinkDown(reason)
    if isinstance(exc, _lib().response) and status is None:
        return LinkDown(reason)  # an answer that is not SCIM: a proxy's page, say
    return Refused(reason)


def _search(scim_filter: str, start: int) -> SearchRequest:
    """A page of users matching a filter (the model parses the filter's text)."""
    request: SearchRequest = _lib().m.SearchRequest.model_validate(
        {"filter": scim_filter, "startIndex": start, "count": PAGE})
    return request


def to_user(account: Account, existing: User | None = None) -> User:
    """The SCIM user for an account (keeping the platform's id when replacing one)."""
    m = _lib().m
    user: User = m.User(
        id=existing.id if existing is not None else None,
        external_id=account.external_id,
        user_name=account.user_name,
        name=m.Name(given_name=account.given_name, family_name=account.family_name),
        display_name=f"{account.given_name} {account.family_name}".strip(),
        preferred_language=account.language,
        active=account.active,
        emails=[m.Email(value=account.email, primary=True)] if account.email else None,
        entitlements=[m.Entitlement(value=slug, type="course") for slug in account.courses]
        or None,
    )
    return user


def differs(account: Account, user: User) -> bool:
    """Whether the platform's user does not hold what the account says."""
    emails = sorted(e.value for e in user.emails or [] if e.value)
    courses = sorted(e.value for e in user.entitlements or [] if e.value)
    name = user.name or _lib().m.Name()
    return (user.user_name != account.user_name or bool(user.active) != account.active
            or name.given_name != account.given_name
            or name.family_name != account.family_name
            or emails != ([account.email] if account.email else [])
            or (user.preferred_language or "") != account.language
            or courses != list(account.courses))


def plan(account: Account | None, user: User | None) -> str:
    """What the platform must be made to do: "created", "reactivated", "updated",
    "deactivated", "deleted", or "unchanged". A patron without a seat who was never on the
    platform is not created."""
    if account is None:
        return "deleted" if user is not None else "unchanged"
    if user is None:
        return "created" if account.active else "unchanged"
    if not differs(account, user):
        return "unchanged"
    if account.active and not user.active:
        return "reactivated"
    return "updated" if account.active else "deactivated"


class AcademyLink:
    """One connection to the platform (use it from one thread; close it after)."""

    def __init__(self, cfg: ScimConfig):
        self.cfg = cfg
        lib = _lib()
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        self._http = lib.httpx2.Client(base_url=cfg.url, headers=headers,
                                       timeout=lib.httpx2.Timeout(cfg.timeout))
        self._user = lib.m.User
        self._list = lib.m.ListResponse
        self._scim = lib.SyncSCIMClient(self._http,
                                        provider=lib.m.ScimProvider(models=[lib.m.User]))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AcademyLink:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _lib().errors as exc:
            raise _classify(exc) from exc

    def _delete(self, user: User) -> None:
        """Delete one user; one that is gone already is fine (a repeated delete)."""
        try:
            self._scim.delete(self._user, user.id)
        except _lib().errors as exc:
            if _status(exc) != 404:
                raise _classify(exc) from exc

    def find(self, external_id: str) -> list[User]:
        """Our users with this externalId (one, or none; more only after someone's mistake)."""
        found = self._call(self._scim.query, self._user, query_parameters=_search(
            f'externalId eq "{external_id}"', 1))
        return list(found.resources or []) if isinstance(found, self._list) else []

    def users(self) -> Iterator[User]:
        """Every user of ours on the platform, page by page."""
        start = 1
        while True:
            page = self._call(self._scim.query, self._user,
                              query_parameters=_search(f'externalId sw "{OURS}"', start))
            if not isinstance(page, self._list):
                return
            resources = list(page.resources or [])
            yield from resources
            start += len(resources)
            if not resources or start > (page.total_results or 0):
                return

    def apply(self, account: Account | None, users: list[User], outcome: str) -> None:
        """Make the platform do `outcome` (see `plan`) for this account and its users."""
        if outcome == "unchanged":
            return
        if outcome == "deleted":
            for user in users:
                self._delete(user)
            return
        assert account is not None
        if outcome == "created":
            self._call(self._scim.create, to_user(account))
            return
        for extra in users[1:]:  # a duplicate: the first one stays, the rest go
            self._delete(extra)
        self._call(self._scim.replace, to_user(account, users[0]))

    def check(self) -> str:
        """For `kiosk doctor` and `academy check`: one authenticated search, answered as
        "answers, N users of ours"; raises LinkDown or Refused."""
        page = self._call(self._scim.query, self._user,
                          query_parameters=_search(f'externalId sw "{OURS}"', 1))
        total = page.total_results if isinstance(page, self._list) else None
        return f"answers ({total or 0} users of ours)"

    def sync(self, account: Account | None, ext_id: str) -> str:
        """Make the platform hold `account` (None: the user of `ext_id` deleted); answers
        what it did. Safe to repeat: the user is found by our externalId first."""
        users = self.find(ext_id)
        outcome = plan(account, users[0] if users else None)
        self.apply(account, users, outcome)
        return outcome
