"""`kiosk doctor`: is this terminal (or embedded kiosk) fit to serve patrons?

Plain functions, each answering one `Result`; `run_all` strings them together the way the
terminal starts: the same configuration (instance kiosk.cfg, then KIOSK_* variables, then
overrides), then the registry it would talk to. Nothing is created or migrated here: a
doctor that repaired things would hide what the next start would do.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from flask import Config as FlaskConfig
from flask import Flask
from sqlalchemy.engine import make_url

from . import config as config_module
from .catalogs import is_compiled
from .paths import resource_dir
from .registry import network, schema
from .registry.academy_link import AcademyLink, LinkDown, Refused, ScimConfig
from .registry.domain import RegistryError
from .registry.http_client import API_PREFIX, HttpRegistryClient
from .registry.services import RegistryService
from .registry.store import Store, make_engine

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
MAX_CLOCK_SKEW = 60.0  # seconds: idle and session limits are judged on both clocks
FAIL_CLOCK_SKEW = 300.0  # past this, sessions and offers end visibly early or late
MIN_FREE_BYTES = 200 * 1024 * 1024  # the SQLite registry, its WAL and the logs live there


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    detail: str


# --- Configuration -------------------------------------------------------------------------


def load_config(overrides: Mapping[str, Any] | None = None,
                instance_path: str | None = None) -> tuple[FlaskConfig, Path]:
    """The terminal's configuration, in the order `kiosk.app.base_app` reads it, without its side
    effects (no secret key or folder is made; an empty DATABASE_URL stays empty). May raise
    SystemExit (a bad KIOSK_* value) or the error of a broken kiosk.cfg."""
    # Flask("kiosk") resolves the same default instance folder as the app itself.
    app = Flask("kiosk", instance_path=config_module.instance_folder(instance_path),
                instance_relative_config=True)
    cfg = app.config
    cfg.from_object(config_module.Config)
    cfg.from_pyfile("kiosk.cfg", silent=True)
    cfg.update(config_module.from_environment())
    cfg.update(overrides or {})
    return cfg, Path(app.instance_path)


def check_config(cfg: Mapping[str, Any]) -> Result:
    """`config.check` as at start. An empty DATABASE_URL is the instance folder's SQLite file,
    and the start makes that folder: it need not exist yet."""
    try:
        config_module.check({**cfg, "DATABASE_URL": cfg["DATABASE_URL"] or "sqlite://"})
    except SystemExit as exc:
        return Result("config", FAIL, str(exc))
    where = cfg["REGISTRY_URL"] or "embedded"
    return Result("config", OK, f"language {cfg['DEFAULT_LANGUAGE']}, library "
                                f"{cfg['LIBRARY_CODE'] or '(none)'}, registry {where}")


def check_secret_key(cfg: Mapping[str, Any]) -> Result:
    """This process holds the registry (no REGISTRY_URL): outside the demo its SECRET_KEY must
    come from the settings, the same on every registry host, as `kiosk registry serve`
    refuses to start without it. A terminal signs only its own pages: its key from the
    instance folder is enough."""
    if cfg["REGISTRY_URL"]:
        return Result("secret", SKIP, "a terminal: a key of its own in the instance folder")
    if cfg["SECRET_KEY"]:
        return Result("secret", OK, "from the settings")
    if cfg["SEED_DEMO"]:
        return Result("secret", OK, "the demo: a key made in the instance folder")
    return Result("secret", FAIL, config_module.SHARED_SECRET_KEY_MISSING)


# --- A central registry over HTTP ----------------------------------------------------------


def _root(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[: -len(API_PREFIX)] if url.endswith(API_PREFIX) else url


def _why(exc: Exception, seconds: float) -> str:
    text = str(exc)
    if isinstance(exc, requests.Timeout):
        return f"no answer within {seconds:g} s"
    refused = network.certificate_refusal(exc)
    if refused is not None:
        return refused
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error: " + text[:120]
    if "refused" in text.lower():
        return "connection refused"
    if "name or service not known" in text.lower() or "getaddrinfo" in text.lower():
        return "host name not found"
    return f"{type(exc).__name__}: {text[:120]}"


@dataclass
class Probe:
    """One unauthenticated GET of the registry's /healthz: reachable, and its clock."""

    result: Result
    date_header: str | None = None
    local_time: float = 0.0  # our clock half-way through the request


def _get(cfg: Mapping[str, Any], url: str, timeout: tuple[float, float]) -> requests.Response:
    """GET `url` trusting the CAs and through the proxy the terminal's client would."""
    with network.session_for(url, cfg["REGISTRY_CA_FILE"]) as session:
        return session.get(url, timeout=timeout, allow_redirects=False)


def check_trust(cfg: Mapping[str, Any]) -> Result:
    """The certificate authorities the terminal trusts for the registry's certificate."""
    if not cfg["REGISTRY_URL"].startswith("https:"):
        return Result("ca", SKIP, "the registry's URL is not https://")
    return Result("ca", OK, network.trust_report(cfg["REGISTRY_CA_FILE"]))


def check_proxy(cfg: Mapping[str, Any]) -> Result:
    """The proxy the terminal's registry calls go through (never its credentials)."""
    return Result("proxy", OK, network.route_report(cfg["REGISTRY_URL"]))


def probe_registry(cfg: Mapping[str, Any]) -> Probe:
    url = _root(cfg["REGISTRY_URL"]) + "/healthz"
    timeout = (float(cfg["REGISTRY_CONNECT_TIMEOUT"]), float(cfg["REGISTRY_DEADLINE"]))
    before = time.time()
    try:
        answer = _get(cfg, url, timeout)
    except requests.RequestException as exc:
        return Probe(Result("registry", FAIL, f"unreachable at {url}: "
                                              f"{_why(exc, timeout[1])}"))
    after = time.time()
    if answer.status_code != 200:
        return Probe(Result("registry", FAIL, f"{url} answered HTTP {answer.status_code}"))
    try:
        version = answer.json().get("version", "?")
    except ValueError:
        return Probe(Result("registry", FAIL, f"{url} did not answer JSON: not the registry?"))
    detail = f"{url} answers ({(after - before) * 1000:.0f} ms, version {version})"
    return Probe(Result("registry", OK, detail), answer.headers.get("Date"),
                 (before + after) / 2)


def check_token(cfg: Mapping[str, Any]) -> tuple[Result, set[str] | None]:
    """An authenticated call through the terminal's own client: the token, and the library
    codes the registry knows (None when the call failed)."""
    client = HttpRegistryClient.from_config(cfg)
    try:
        codes = config_module.library_codes(client.institutions())
    except RegistryError as error:
        reasons = {
            "terminal_revoked": "token revoked (issue a new one: kiosk registry add-terminal)",
            "terminal_unauthorized": "token not accepted: unknown to this registry",
            "unavailable": "the registry gave no usable answer to an authenticated call",
        }
        return Result("token", FAIL, reasons.get(error.code, f"refused: {error.code}")), None
    finally:
        client.close()
    return Result("token", OK, f"accepted ({len(codes)} libraries)"), codes


def check_remote_schema(cfg: Mapping[str, Any]) -> Result:
    """The registry's own database is behind its /readyz."""
    url = _root(cfg["REGISTRY_URL"]) + "/readyz"
    timeout = (float(cfg["REGISTRY_CONNECT_TIMEOUT"]), float(cfg["REGISTRY_DEADLINE"]))
    try:
        answer = _get(cfg, url, timeout)
        reason = answer.json().get("reason", "") if answer.status_code != 200 else ""
    except (requests.RequestException, ValueError) as exc:
        return Result("migrations", FAIL, f"{url}: {_why(exc, timeout[1])}")
    if answer.status_code == 200:
        return Result("migrations", OK, "the registry's database is current (/readyz)")
    return Result("migrations", FAIL, f"registry not ready: {reason or answer.status_code}")


def check_clock(date_header: str | None, local_time: float,
                limit: float = MAX_CLOCK_SKEW, fail: float = FAIL_CLOCK_SKEW) -> Result:
    """The registry's `Date` against our clock. HTTP dates have whole seconds: the true
    server time is on average half a second later than the header says."""
    if not date_header:
        return Result("clock", WARN, "the registry's answer had no Date header")
    try:
        server = parsedate_to_datetime(date_header).timestamp() + 0.5
    except (TypeError, ValueError):
        return Result("clock", WARN, f"unreadable Date header {date_header!r}")
    skew = server - local_time
    detail = f"registry clock {round(skew):+d} s from ours"
    if abs(skew) > fail:
        return Result("clock", FAIL, f"{detail} (over {fail:g} s: idle and session limits "
                                     "are off; set up NTP)")
    if abs(skew) > limit:
        return Result("clock", WARN, f"{detail} (over {limit:g} s: idle and session limits "
                                     "will be off; set up NTP)")
    return Result("clock", OK, detail)


# --- The embedded registry (this process, this database) -----------------------------------


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def database_missing(url: str) -> bool:
    """A SQLite file that is not there yet: opening it would create it."""
    parsed = make_url(url)
    return (parsed.drivername == "sqlite" and parsed.database not in (None, "", ":memory:")
            and not Path(parsed.database).exists())


def check_embedded(cfg: Mapping[str, Any]) -> list[Result]:
    """Migrations and the library code against the local registry database."""
    url = cfg["DATABASE_URL"]
    if database_missing(url):
        status = WARN if cfg["AUTO_MIGRATE"] else FAIL
        return [Result("library", SKIP, "no registry database yet"),
                Result("migrations", status, f"{_safe_url(url)} does not exist yet"
                       + (" (the first start creates it)" if cfg["AUTO_MIGRATE"] else ""))]
    engine = make_engine(url)
    try:
        try:
            current, head = schema.current_revision(engine), schema.HEAD_REVISION
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
            reason = f"{_safe_url(url)}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            return [Result("library", SKIP, "registry database unreadable"),
                    Result("migrations", FAIL, reason)]
        if current != head:
            if cfg["AUTO_MIGRATE"]:
                migrations = Result("migrations", WARN, f"at {current}, head {head}: "
                                                        "the next start migrates it")
            else:
                migrations = Result("migrations", FAIL, f"at {current}, head {head}: "
                                                        "run `kiosk registry upgrade`")
            return [Result("library", SKIP, "schema not current"), migrations]
        service = RegistryService(Store(engine))
        codes = config_module.library_codes(service.institutions())
        members = check_member_systems(service.members.doctor())
    finally:
        engine.dispose()
    return [check_library(cfg["LIBRARY_CODE"], codes),
            Result("migrations", OK, f"current ({head}) in {_safe_url(url)}"), members,
            check_academy(cfg)]


def check_academy(cfg: Mapping[str, Any]) -> Result:
    """The academy's platform (SCIM): does it answer, and take our token? WARN when not:
    seat changes wait in the outbox meanwhile, nothing is lost."""
    try:
        scim = ScimConfig.from_config(cfg)
    except OSError as exc:
        return Result("academy", FAIL, f"ACADEMY_SCIM_TOKEN_FILE: {exc.strerror}")
    if scim is None:
        return Result("academy", SKIP, "ACADEMY_SCIM_URL not set: the academy link is off")
    try:
        with AcademyLink(scim) as link:
            return Result("academy", OK, f"{scim.url} {link.check()}")
    except (LinkDown, Refused) as exc:
        return Result("academy", WARN, f"{scim.url}: {exc} (seat changes wait in the outbox)")


def check_member_systems(answers: list[tuple[str, bool, str]]) -> Result:
    """Each institution's member system (SIP2): does it answer? WARN, not FAIL, when one does
    not: the kiosk still serves everyone else, and its members get a calm "try again"."""
    if not answers:
        return Result("members", SKIP, "none set: accounts made at the kiosk only")
    detail = "; ".join(f"{institution} {what}" for institution, _, what in answers)
    return Result("members", OK if all(ok for _, ok, _ in answers) else WARN, detail)


def check_library(code: str, codes: set[str] | None) -> Result:
    if codes is None:
        return Result("library", SKIP, "not checked: no authenticated answer")
    if not code:
        return Result("library", OK, "LIBRARY_CODE not set (no home library preselected)")
    if code in codes:
        return Result("library", OK, f"{code} is a library in the registry")
    if not codes:
        return Result("library", WARN, f"{code}: the registry has no libraries yet")
    return Result("library", FAIL, f"LIBRARY_CODE {code!r} is not a library in the registry")


# --- This machine -------------------------------------------------------------------------


def check_translations(directory: Path) -> Result:
    """Every language's .mo present and holding what its .po says (`catalogs.is_compiled`:
    by the file times, or by the contents when the times disagree). A stale catalogue in a
    writable folder is compiled at start (kiosk/i18n.py): a warning; otherwise a failure,
    since the pages would fall back to English or to old texts."""
    problems = []
    for lang in config_module.LANGUAGES:
        folder = directory / lang / "LC_MESSAGES"
        po, mo = folder / "messages.po", folder / "messages.mo"
        if not mo.exists():
            problems.append(f"{lang}: no messages.mo" if po.exists() else f"{lang}: missing")
        elif po.exists() and not is_compiled(po, lang):
            problems.append(f"{lang}: messages.mo differs from messages.po")
    if not problems:
        return Result("translations", OK, f"{', '.join(config_module.LANGUAGES)} compiled")
    fixable = all(not p.endswith("missing") for p in problems) and os.access(directory, os.W_OK)
    if fixable:
        return Result("translations", WARN, "; ".join(problems) + " (compiled at next start)")
    return Result("translations", FAIL, "; ".join(problems)
                  + " (run `kiosk translations compile`)")


def check_disk(folder: Path, minimum: int = MIN_FREE_BYTES) -> Result:
    existing = folder
    while not existing.exists() and existing != existing.parent:  # not made yet: its disk
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    detail = f"{free / 1024**3:.1f} GB free in {folder}"
    if free < minimum:
        return Result("disk", FAIL, f"{detail} (under {minimum // 1024**2} MB)")
    return Result("disk", OK, detail)


# --- All of it --------------------------------------------------------------------------------


def run_all(overrides: Mapping[str, Any] | None = None, instance_path: str | None = None,
            translations: Path | None = None) -> list[Result]:
    try:
        cfg, instance = load_config(overrides, instance_path)
    except SystemExit as exc:
        return [Result("config", FAIL, str(exc))]
    except Exception as exc:  # noqa: BLE001 - a kiosk.cfg that does not even load
        return [Result("config", FAIL, f"kiosk.cfg: {type(exc).__name__}: {exc}")]
    results = [check_config(cfg)]
    if results[0].status == OK:
        results.append(check_secret_key(cfg))
    else:
        results += _skipped(("secret",), "configuration refused")
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{instance / 'registry.sqlite3'}"
    configured = results[0].status == OK
    if not cfg["REGISTRY_URL"]:
        results += _skipped(("ca", "proxy"), "embedded: no registry calls")
        results.append(Result("registry", OK, "embedded: runs in this process"))
        results.append(Result("token", SKIP, "embedded: no token"))
        if configured:
            results += check_embedded(cfg)
        else:
            results += _skipped(("library", "migrations"), "configuration refused")
        results.append(Result("clock", SKIP, "embedded: one clock"))
    elif not configured:
        results += _skipped(("ca", "proxy", "registry", "token", "library", "migrations",
                             "clock"), "configuration refused")
    else:
        results += [check_trust(cfg), check_proxy(cfg)]
        probe = probe_registry(cfg)
        results.append(probe.result)
        if probe.result.status != OK:
            results += _skipped(("token", "library", "migrations", "clock"),
                                "registry unreachable")
        else:
            token, codes = check_token(cfg)
            results += [token, check_library(cfg["LIBRARY_CODE"], codes),
                        check_remote_schema(cfg),
                        check_clock(probe.date_header, probe.local_time)]
    results.append(check_translations(translations or resource_dir("translations")))
    results.append(check_disk(instance))
    return results


def _skipped(names: tuple[str, ...], why: str) -> list[Result]:
    return [Result(name, SKIP, why) for name in names]


def render(results: list[Result], echo: Callable[[str], Any] = print) -> None:
    width = max(len("check"), *(len(r.check) for r in results))
    echo(f"{'check':<{width}}  {'status':<6}  detail")
    for r in results:
        echo(f"{r.check:<{width}}  {r.status:<6}  {r.detail}")


def failed(results: list[Result]) -> bool:
    return any(r.status == FAIL for r in results)
