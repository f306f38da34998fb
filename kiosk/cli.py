"""The `kiosk` command: run the demo, manage the registry, work on translations."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from babel.messages.pofile import read_po, write_po
from flask import Flask

from . import backup, registry_doctor
from . import doctor as checks
from .app import base_app, create_app, create_registry_app
from .catalogs import catalogue_problems, compile_catalogues
from .config import SHARED_SECRET_KEY_MISSING, read_env_file
from .demo_partners import DemoPartners
from .paths import resource_dir
from .registry import academy_sender, schema
from .registry.academy_link import AcademyLink, LinkDown, Refused, ScimConfig
from .registry.academy_sync import export_csv, reconcile
from .registry.days import BELGIUM
from .registry.demo_member_system import DEMO_CARDS, DEMO_LOGIN
from .registry.domain import (
    REASON_MAX,
    RegistryError,
    clean_name,
    normalise_password,
    terminal_state,
)
from .registry.mailer import SmtpConfig, send_due
from .registry.member_system import DEFAULT_PORT, DEFAULT_TIMEOUT, MemberSystemConfig
from .registry.members import PROBLEMS
from .registry.programme_file import ProgrammeFileError, read_programme, template_text
from .registry.promotion import OfferSweep
from .registry.roles import Role, check_account
from .registry.sample_patrons import add_sample_patrons, has_patrons
from .registry.seed import is_seeded, seed
from .registry.services import RegistryService, utcnow
from .registry.store import Store
from .serving import (
    THREADS,
    WORKERS,
    default_server,
    serve,
    start_heartbeat,
    start_mail_sender,
)
from .staff.practice import after_reset
from .version import __version__


@click.group()
@click.version_option(package_name="library-course-kiosk")
def main() -> None:
    """The library course kiosk."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--sample-patrons", default=80, show_default=True, type=click.IntRange(0, 5000),
              help="Fictional patrons added to a new demo registry (0: none), so that the "
                   "staff pages have something to show.")
@click.option("--reset", is_flag=True,
              help="Start the practice again: everything done in the demo goes, and it is as "
                   "it began (refused on a registry that is not a practice one).")
def demo(host: str, port: int, threads: int, sample_patrons: int, reset: bool) -> None:
    """Run the demo: the terminal's pages and the registry (SQLite, seeded) in this process,
    a member system and the academy's platform beside it. It is a practice registry: every
    page says so, and it never runs on a registry that holds a real programme."""
    from waitress import create_server  # only to serve: the other commands start without it

    settings = base_app(None, None).config
    embedded = not settings["REGISTRY_URL"]  # else the registry and its partners are elsewhere
    if embedded and settings["AUTO_MIGRATE"]:
        schema.upgrade_in_child(settings["DATABASE_URL"])  # Alembic never in this process
    # The outside systems (the member system, the academy's platform and the sync with it)
    # run in a child process, on ports named now.
    own_academy = bool(settings["ACADEMY_SCIM_URL"])
    partners = DemoPartners(
        member_system=embedded and settings["SEED_DEMO"],
        academy_token_file=None if own_academy or not embedded
        else _token_file(secrets.token_urlsafe(24)))
    app = create_app(partners.academy_config() or None)
    service = app.extensions.get("registry_service")
    _refuse_a_real_registry(app, service)
    if reset:
        if service is None:
            raise click.ClickException(
                "--reset starts the practice again on the registry in this process; a "
                "practice registry elsewhere is reset by its coordinator in its staff pages.")
        service.practice.reset(actor="kiosk demo --reset")
        click.echo("The practice registry is back at its start.")
    server = create_server(app, host=host, port=port, threads=threads)
    if sample_patrons and service is not None and app.config["SEED_DEMO"]:
        def add_samples() -> None:
            threading.Thread(target=_add_sample_patrons, args=(service, sample_patrons),
                             name="sample-patrons", daemon=True).start()

        if not has_patrons(service):
            click.echo(f"Adding {sample_patrons} fictional patrons to the new demo registry "
                       "in the background (first start only)…")
            add_samples()
        after_reset(app.extensions, add_samples)  # the coordinator's reset in the console
    partners.start(app.config["DATABASE_URL"])
    if service is not None and partners.sip_port:
        _configure_demo_member_system(app, service, partners.sip_port)
    if start_mail_sender(app):
        click.echo(f"E-mail notices go out through {app.config['SMTP_HOST']}.")
    if partners.scim_port:
        click.echo(f"Seats go to the academy over SCIM at {partners.scim_url} (a test "
                   "platform beside the demo).")
    elif start_academy_sender(app):
        click.echo(f"Seats go to the academy over SCIM at {app.config['ACADEMY_SCIM_URL']}.")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Library course kiosk (demo) running at http://{shown}:{port}/")
    click.echo(f"Data and secret key: {app.instance_path}   Stop with Ctrl+C.")
    try:
        server.run()  # returns on Ctrl+C (waitress catches it)
    except KeyboardInterrupt:
        pass
    finally:
        partners.stop()
    click.echo("Stopped.")


def _refuse_a_real_registry(app: Flask, service: RegistryService | None) -> None:
    """The demo shows practice data and makes fictional patrons: never on a registry that
    holds a real programme (one made by `kiosk registry init`), in this process or elsewhere."""
    if service is not None:
        real = service.practice.holds_real_programme()
    else:
        try:
            real = not app.extensions["registry"].practice()
        except RegistryError as error:
            raise click.ClickException(
                f"the registry at {app.config['REGISTRY_URL']} could not say whether it is a "
                f"practice registry ({error.code}); the demo runs only on one.") from None
    if real:
        if service is not None:
            service.store.engine.dispose()
        raise click.ClickException(
            "this registry holds a real programme: the demo runs only on a practice registry "
            "(a new database, or one made with `kiosk registry upgrade --demo-data`). No "
            "patron, seat or setting was changed.")


def _add_sample_patrons(service: RegistryService, count: int) -> None:
    """After the port is bound, so the first page does not wait for them (about a second).
    Each sign-up and each claim is committed as the kiosk's own are: every page shows the
    registry as it is while they arrive."""
    try:
        made = add_sample_patrons(service, count, utcnow())
    except Exception as exc:  # a demo convenience: say so, and the demo serves on without them
        click.echo(f"The fictional patrons could not be added ({exc!r}).", err=True)
        return
    click.echo(f"{made} fictional patrons added.")


def _configure_demo_member_system(app: Flask, service: RegistryService, port: int) -> None:
    """A member system with made-up library cards, for the kiosk's institution: a librarian
    tries the "I have a library card" journey without any outside system. A kiosk stands in
    a library (its member system checks the cards): without LIBRARY_CODE, the demo's first."""
    institutions = service.institutions()
    if not app.config["LIBRARY_CODE"]:
        app.config["LIBRARY_CODE"] = institutions[0].libraries[0].code
    institution = next(i.code for i in institutions
                       if any(lib.code == app.config["LIBRARY_CODE"] for lib in i.libraries))
    secret = Path(app.instance_path) / "demo-sip-password"
    secret.parent.mkdir(parents=True, exist_ok=True)  # not made yet if the data lives elsewhere
    secret.write_text(DEMO_LOGIN[1], encoding="utf-8")
    service.members.configure(institution, MemberSystemConfig(
        host="127.0.0.1", port=port, login_user=DEMO_LOGIN[0],
        password_file=str(secret)), actor="kiosk demo")
    click.echo(f"The kiosk stands in {app.config['LIBRARY_CODE']}. Demo member system (SIP2) "
               f"on 127.0.0.1:{port} for {institution}; library cards to try:")
    for card in DEMO_CARDS:
        what = "blocked" if card.blocked else "expired" if card.expired else "valid"
        click.echo(f"  {card.barcode}  PIN {card.pin}  {what:<8} {card.name}")


def _token_file(token: str) -> str:
    path = Path(tempfile.mkdtemp(prefix="kiosk-academy-")) / "token"
    path.write_text(token, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def start_academy_sender(app: Flask, every: float = 10.0) -> threading.Event | None:
    """Sync the academy's outbox in the background while this registry serves (when
    ACADEMY_SCIM_URL is set). Several senders may run side by side: each patron's changes
    are leased before they are synced."""
    cfg = ScimConfig.from_config(app.config)
    service = app.extensions.get("registry_service")
    if cfg is None or service is None:
        return None
    return academy_sender.start_sender(service.store, cfg, service.clock, every=every)


# --- The central registry ---------------------------------------------------------------

def _read_registry_env_file(ctx: click.Context, param: click.Parameter,
                            path: str | None) -> None:
    if path:
        os.environ.update(read_env_file(path))


def database_option(command: Callable[..., None]) -> Callable[..., None]:
    """Every registry command's --database-url, and --env-file: the service's own settings
    file, read before the other options (eager), so that `kiosk registry purge --env-file
    /etc/kiosk/registry.env` runs with exactly the service's settings."""
    command = click.option(
        "--database-url", envvar="KIOSK_DATABASE_URL", default="", show_envvar=True,
        help="SQLAlchemy URL, e.g. postgresql://kiosk@db/kiosk (default: SQLite in the "
             "instance).")(command)
    return click.option(
        "--env-file", type=click.Path(dir_okay=False), default=None, is_eager=True,
        expose_value=False, callback=_read_registry_env_file,
        help="Read KIOSK_* settings from this file first, over this shell's, as the service "
             "does (/etc/kiosk/registry.env).")(command)


def _registry_app(database_url: str, *, migrate: bool = False, demo: bool = False) -> Flask:
    overrides: dict[str, object] = {"AUTO_MIGRATE": migrate, "SEED_DEMO": demo}
    if database_url:
        overrides["DATABASE_URL"] = database_url
    return create_registry_app(overrides)


@contextmanager
def closing_engine(store: Store) -> Iterator[None]:
    """The command's connections closed when it ends (not left to the garbage collector)."""
    try:
        yield
    finally:
        store.engine.dispose()


def _service(database_url: str) -> RegistryService:
    """The registry of the running command; its connections are closed when the command
    ends, also when it fails (not left to the garbage collector, nor to PostgreSQL's count of
    connections)."""
    service: RegistryService = _registry_app(database_url).extensions["registry_service"]
    click.get_current_context().call_on_close(service.store.engine.dispose)
    return service


@main.group()
def registry() -> None:
    """Run and manage the central seat registry."""


@registry.command("upgrade")
@database_option
@click.option("--demo-data", is_flag=True,
              help="Fill a new, empty database with the demo's programme and staff (for a "
                   "training or test registry; refused on a database that holds a programme).")
def registry_upgrade(database_url: str, demo_data: bool) -> None:
    """Apply the database migrations (safe to run again)."""
    store = _registry_app(database_url, migrate=True).extensions["registry_service"].store
    with closing_engine(store):
        if demo_data:
            if is_seeded(store):
                raise click.ClickException(
                    "--demo-data only fills a new, empty registry, and this one holds a "
                    "programme: nothing was changed.")
            # The app's start seeds the demo's programme and staff; its connections close.
            _registry_app(database_url, demo=True).extensions[
                "registry_service"].store.engine.dispose()
        click.echo(f"Database schema is at revision {schema.current_revision(store.engine)} "
                   "(current).")


@registry.command("doctor")
@database_option
@click.option("--workers", envvar="KIOSK_WORKERS", default=WORKERS, show_default=True,
              show_envvar=True, type=click.IntRange(1, 64),
              help="The workers `kiosk registry serve` runs.")
@click.option("--threads", envvar="KIOSK_THREADS", default=THREADS, show_default=True,
              show_envvar=True, type=click.IntRange(1, 64), help="Its threads per worker.")
@click.option("--hosts", default=1, show_default=True, type=click.IntRange(1, 16),
              help="Registry hosts sharing this database, each with these settings.")
def registry_doctor_command(database_url: str, workers: int, threads: int, hosts: int) -> None:
    """Check this registry host: its settings, its database (answers, migrations current)
    and the connections it may open at full load against PostgreSQL's max_connections;
    exit 1 on any FAIL."""
    try:
        cfg, instance = checks.load_config({"DATABASE_URL": database_url} if database_url
                                           else None)
    except SystemExit as exc:
        results = [checks.Result("config", checks.FAIL, str(exc))]
    else:
        results = registry_doctor.run_all(cfg, instance, workers=workers, threads=threads,
                                          hosts=hosts)
    checks.render(results, click.echo)
    if checks.failed(results):
        sys.exit(1)


# The words for check_account's codes, for `kiosk registry init`.
ACCOUNT_PROBLEMS = {
    "required": "is missing", "too_long": "is too long",
    "username_invalid": "must be 3 to 60 lower-case letters, digits, dots, hyphens or "
                        "underscores, e.g. an.peeters",
    "invalid_characters": "has characters that cannot be shown",
    "staff_password_too_short": "must have at least 12 characters",
}


@registry.command("init")
@database_option
@click.argument("programme_file", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--coordinator", "username", help="The first coordinator's log-in name, e.g. "
              "an.peeters.")
@click.option("--coordinator-name", "display_name", help="Their name as staff see it in the "
              "audit log, e.g. 'An Peeters'.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Read their password from this file's first line (-: standard input) "
                   "instead of asking twice.")
@click.option("--write-template", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a programme file to fill in at this path, and stop.")
def registry_init(database_url: str, programme_file: Path | None, username: str | None,
                  display_name: str | None, password_file: str | None,
                  write_template: Path | None) -> None:
    """Start a real registry, once, on an empty database: the migrations, the programme
    from PROGRAMME_FILE (institutions, libraries, categories, courses, the cap), and its
    first coordinator. No demo data, no demo account."""
    if write_template is not None:
        if write_template.exists():
            raise click.ClickException(f"{write_template} exists: not overwritten.")
        write_template.write_text(template_text(), encoding="utf-8")
        click.echo(f"Programme template written to {write_template}: fill it in, then run "
                   f"`kiosk registry init {write_template} --coordinator … "
                   "--coordinator-name …`.")
        return
    if programme_file is None or not username or not display_name:
        raise click.UsageError("give the programme file, --coordinator and --coordinator-name "
                               "(or --write-template FILE for a file to fill in)")
    try:
        data = read_programme(programme_file)
    except ProgrammeFileError as error:
        raise click.ClickException(
            f"{programme_file} was not loaded, nothing was changed:\n  "
            + "\n  ".join(error.problems)) from None
    if password_file is not None:
        with click.open_file(password_file, encoding="utf-8") as source:
            password = source.readline().rstrip("\r\n")
    else:
        password = click.prompt("The coordinator's password (at least 12 characters)",
                                hide_input=True, confirmation_prompt=True)
    problems = check_account(username.strip().lower(), clean_name(display_name),
                             Role.COORDINATOR, normalise_password(password))
    if problems:
        names = {"username": "--coordinator", "display_name": "--coordinator-name",
                 "password": "the password"}
        raise click.ClickException("; ".join(
            f"{names.get(field, field)} {ACCOUNT_PROBLEMS.get(code, code)}"
            for field, code in problems.items()) + ". Nothing was changed.")
    service: RegistryService = _registry_app(database_url, migrate=True).extensions[
        "registry_service"]
    with closing_engine(service.store):
        if not seed(service.store, data, utcnow().date()):
            raise click.ClickException(
                "This registry already holds a programme: nothing was changed. (Another "
                "coordinator: `kiosk registry add-staff --role coordinator`.)")
        service.staff.create(username, display_name, Role.COORDINATOR, password,
                             actor="kiosk registry init", where="cli")
    libraries = sum(len(i["libraries"]) for i in data["institutions"])
    click.echo(f"Registry ready: {len(data['institutions'])} institution(s), {libraries} "
               f"library(ies), {len(data['categories'])} categories, {len(data['courses'])} "
               f"course(s), cap {data['programme']['cap']:,}. {username.strip().lower()} can "
               "log in as coordinator at /nl/staff/ (or /fr/, /en/).")


@registry.command("serve")
@database_option
@click.option("--host", envvar="KIOSK_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="KIOSK_PORT", default=8000, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--workers", envvar="KIOSK_WORKERS", default=WORKERS, show_default=True,
              show_envvar=True, type=click.IntRange(1, 64))
@click.option("--threads", envvar="KIOSK_THREADS", default=THREADS, show_default=True,
              show_envvar=True, type=click.IntRange(1, 64))
@click.option("--server", type=click.Choice(["gunicorn", "waitress"]), default=None,
              help="Default: gunicorn on Linux, waitress on Windows.")
def registry_serve(database_url: str, host: str, port: int, workers: int, threads: int,
                   server: str | None) -> None:
    """Serve the registry API (/api/v1), /healthz, /readyz and the staff pages (/nl/staff/)."""
    app = _registry_app(database_url)  # refuse to start on a bad config or a stale schema
    app.extensions["registry_service"].store.engine.dispose()  # each worker opens its own
    if app.config.get("SECRET_KEY_OF_THIS_HOST") and not app.config["SEED_DEMO"]:
        raise click.ClickException(SHARED_SECRET_KEY_MISSING)
    click.echo(f"Seat registry on http://{host}:{port}/api/v1, staff pages on "
               f"http://{host}:{port}/nl/staff/ ({server or default_server()})")
    serve(lambda: _with_mail_sender(_registry_app(database_url)), host=host, port=port,
          workers=workers, threads=threads, server=server or default_server())


def _with_mail_sender(app: Flask) -> Flask:
    """Each serving process (gunicorn worker) sends notices too, after the fork: senders
    claim notices one by one, so none goes twice."""
    start_mail_sender(app)
    start_academy_sender(app)
    return app


@registry.command("send-notices")
@database_option
@click.option("--loop", is_flag=True, help="Keep sending every --every seconds (Ctrl+C stops).")
@click.option("--every", default=30, show_default=True, type=click.IntRange(1, 3600))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000),
              help="At most this many notices per round.")
def send_notices(database_url: str, loop: bool, every: int, limit: int) -> None:
    """Send the queued e-mail notices that are due (a failed one waits longer each time)."""
    app = _registry_app(database_url)
    smtp = SmtpConfig.from_config(app.config)
    if smtp is None:
        raise click.ClickException("SMTP_HOST is not set: e-mail notices are off")
    service = app.extensions["registry_service"]

    def one_round() -> None:
        sent = send_due(service.store, smtp, service.clock(), limit)
        counts = service.notices.counts()
        click.echo(f"Sent {sent} notice(s); {counts['queued']} waiting, "
                   f"{counts['failed']} given up.")

    _rounds(one_round, loop=loop, every=every)


def _rounds(one_round: Callable[[], None], *, loop: bool, every: int) -> None:
    """One round, or with --loop one every `every` seconds until Ctrl+C."""
    while True:
        one_round()
        if not loop:
            return
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            return


@registry.group("academy")
def academy_group() -> None:
    """The academy's platform over SCIM: send the outbox, reconcile, export."""


def _academy_config(app: Flask) -> ScimConfig:
    cfg = ScimConfig.from_config(app.config)
    if cfg is None:
        raise click.ClickException("ACADEMY_SCIM_URL is not set: the academy link is off")
    return cfg


@academy_group.command("send")
@database_option
@click.option("--loop", is_flag=True, help="Keep sending every --every seconds (Ctrl+C stops).")
@click.option("--every", default=10, show_default=True, type=click.IntRange(1, 3600))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10000),
              help="At most this many patrons per round.")
def academy_send(database_url: str, loop: bool, every: int, limit: int) -> None:
    """Sync the patrons whose seat changed with the academy (a failure waits longer each
    time)."""
    app = _registry_app(database_url)
    cfg = _academy_config(app)
    service = app.extensions["registry_service"]

    def one_round() -> None:
        done = academy_sender.send_due(service.store, cfg, service.clock(), limit)
        state = service.academy.state()
        click.echo(f"Synced {done.synced} patron(s), {done.changed} changed on the platform; "
                   f"{state.backlog} waiting, {state.given_up} given up."
                   + (f" Platform unusable: {done.down}" if done.down else ""))

    _rounds(one_round, loop=loop, every=every)


@academy_group.command("check")
@database_option
def academy_check(database_url: str) -> None:
    """Does the academy's platform answer and accept our token? (exits 1 if not)"""
    app = _registry_app(database_url)
    try:
        with AcademyLink(_academy_config(app)) as link:
            click.echo(f"OK    {link.cfg.url} {link.check()}")
    except (LinkDown, Refused) as exc:
        click.echo(f"FAIL  {exc}")
        sys.exit(1)


@academy_group.command("sync")
@database_option
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
def academy_sync(database_url: str, dry_run: bool) -> None:
    """Reconcile the platform with the registry: create missing users, reactivate,
    deactivate those without a seat, fix course lists, delete users of erased patrons."""
    app = _registry_app(database_url)
    service = app.extensions["registry_service"]
    try:
        with AcademyLink(_academy_config(app)) as link:
            report = reconcile(service.store, link, service.clock(), dry_run=dry_run)
    except (LinkDown, Refused) as exc:
        raise click.ClickException(f"the academy's platform: {exc}") from exc
    click.echo(report.summary())


@academy_group.command("export")
@database_option
@click.option("--csv", "csv_file", required=True, type=click.Path(dir_okay=False),
              help="Write the seat holders to this CSV file (for a platform without SCIM).")
def academy_export(database_url: str, csv_file: str) -> None:
    """The seat holders as the academy gets them over SCIM, as CSV (personal data: keep the
    file safe and delete it once imported)."""
    service = _service(database_url)
    fd = os.open(csv_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as out:
        count = export_csv(service.store, out, now=service.clock)
    click.echo(f"Wrote {count} seat holder(s) to {csv_file}.")


@registry.command("add-terminal")
@database_option
@click.option("--library", "library_code", required=True, help="Library code, e.g. ANT-PERMEKE.")
@click.option("--name", required=True, help="A name staff recognise, e.g. 'Permeke kiosk 2'.")
@click.option("--actor", default="cli", show_default=True)
def add_terminal(database_url: str, library_code: str, name: str, actor: str) -> None:
    """Issue a terminal token (shown once; only its hash is kept)."""
    try:
        token, view = _service(database_url).add_terminal(library_code, name, actor)
    except RegistryError as error:
        raise click.ClickException(f"{error.code}: {error.fields}") from None
    click.echo(f"Terminal {view.id} '{view.name}' for {view.library_code}. Its token:")
    click.echo(token)
    click.echo("Keep it now: it is not shown again. Set KIOSK_REGISTRY_TOKEN on the terminal.")


@registry.command("terminals")
@database_option
def list_terminals(database_url: str) -> None:
    """List terminals: library, last contact (UTC), version, and online / offline (no contact
    for 5 minutes) / outdated (older than this registry) / revoked."""
    service = _service(database_url)
    now = service.clock()
    for t in service.terminals():
        seen = t.last_seen_at.isoformat(timespec="seconds") if t.last_seen_at else "never"
        state = terminal_state(t, now, __version__)
        click.echo(f"{t.id:>4}  {t.library_code:<20} {t.name:<30} {seen:<20} "
                   f"{t.version or '-':<24} {state}")


@registry.command("revoke-terminal")
@database_option
@click.argument("terminal_id", type=int)
@click.option("--actor", default="cli", show_default=True)
def revoke_terminal(database_url: str, terminal_id: int, actor: str) -> None:
    """Revoke a terminal's token at once."""
    try:
        _service(database_url).revoke_terminal(terminal_id, actor)
    except RegistryError as error:
        raise click.ClickException(f"no terminal {terminal_id}") from error
    click.echo(f"Terminal {terminal_id} revoked.")


@registry.command("set-cap")
@database_option
@click.argument("cap", type=click.IntRange(0, 1_000_000))
@click.option("--reason", required=True,
              help="Why, for the audit log, e.g. 'Second batch of licences from the academy'.")
@click.option("--preview", "only_preview", is_flag=True,
              help="Only show who would be promoted; change nothing.")
@click.option("--actor", default="cli", show_default=True, help="Who changes it (audit log).")
def set_cap(database_url: str, cap: int, reason: str, only_preview: bool, actor: str) -> None:
    """Change the programme's cap, as the coordinator's page does: the preview first (who
    a raise promotes, in order), then the change, refused if the line changed in between."""
    waitlist = _service(database_url).waitlist
    preview = waitlist.preview_cap(cap)
    how = "offered a seat" if preview.promotion == "offer" else "given a seat"
    click.echo(f"Cap {preview.current_cap} -> {cap}: {len(preview.promoted)} of "
               f"{preview.waiting} waiting {how}.")
    for entry in preview.promoted[:20]:
        click.echo(f"  {entry.position:>6}  {entry.card_masked}  {entry.library_code:<14}  "
                   f"waiting since {entry.requested_at:%Y-%m-%d}")
    if len(preview.promoted) > 20:
        click.echo(f"  … and {len(preview.promoted) - 20} more")
    if preview.left_empty:
        click.echo(f"{preview.left_empty} freed seat(s) stay empty: {preview.pending} waiting "
                   "for an identity check, the others over their institution's quota.")
    if only_preview:
        return
    try:
        promoted = waitlist.change_cap(cap, reason, actor=actor, expected=preview.fingerprint)
    except RegistryError as refusal:
        problems = {"required": "--reason is required",
                    "too_long": f"--reason is longer than {REASON_MAX} characters",
                    "invalid_characters": "--reason has control characters",
                    "preview_stale": "the waiting list changed meanwhile: run it again"}
        problem = refusal.fields.get("reason", refusal.code)
        raise click.ClickException(problems.get(problem, problem)) from None
    click.echo(f"Cap is now {cap}; {promoted} patron(s) {how} from the waiting list.")


@registry.command("add-staff")
@database_option
@click.option("--username", required=True, help="Lower-case log-in name, e.g. an.peeters.")
@click.option("--name", "display_name", required=True, help="Shown in the audit log and on "
              "everything done for a patron, e.g. 'An Peeters'.")
@click.option("--role", type=click.Choice(["librarian", "coordinator", "it_admin"]),
              required=True)
@click.option("--institution", "institution_code", default=None,
              help="A librarian's institution code, e.g. ANT.")
@click.option("--library", "library_code", default=None,
              help="The library they usually work at, e.g. ANT-PERMEKE.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (for scripts) instead of asking.")
@click.option("--actor", default="cli", show_default=True)
def add_staff(database_url: str, username: str, display_name: str, role: str,
              institution_code: str | None, library_code: str | None, password_stdin: bool,
              actor: str) -> None:
    """Create a staff account (librarian, coordinator or IT admin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password (at least 12 characters)", hide_input=True,
                                confirmation_prompt=True)
    try:
        view = _service(database_url).staff.create(
            username, display_name, role, password, institution_code=institution_code,
            library_code=library_code, actor=actor, where="cli")
    except RegistryError as error:
        problems = ", ".join(f"{field}: {code}" for field, code in error.fields.items())
        raise click.ClickException(problems or error.code) from None
    click.echo(f"Staff account {view.username} ({view.role}) created.")


@registry.command("staff")
@database_option
def list_staff(database_url: str) -> None:
    """List staff accounts: user name, role, institution, library, active or disabled."""
    for view, active in _service(database_url).staff.accounts():
        click.echo(f"{view.username:<24} {view.role:<12} {view.institution_code or '-':<6} "
                   f"{view.library_code or '-':<20} {'active' if active else 'disabled'}")


@registry.command("disable-staff")
@database_option
@click.argument("username")
@click.option("--actor", default="cli", show_default=True)
def disable_staff(database_url: str, username: str, actor: str) -> None:
    """Disable a staff account: no more log-ins, open sessions end now."""
    try:
        _service(database_url).staff.disable(username, actor=actor, where="cli")
    except RegistryError:
        raise click.ClickException(f"no staff account {username!r}") from None
    click.echo(f"Staff account {username} disabled.")


@registry.command("erase-patron")
@database_option
@click.argument("card_number")
@click.option("--actor", required=True, help="Who erases, and why (audit log), e.g. "
              "'dpo: request 2026-17'.")
@click.confirmation_option(prompt="Erase this patron's account and free their seat?")
def erase_patron(database_url: str, card_number: str, actor: str) -> None:
    """Erase a patron: every personal field, their courses and place; their seat goes to the
    next in line."""
    try:
        _service(database_url).erase_by_card(card_number, actor)
    except RegistryError as error:
        raise click.ClickException(f"no patron with card number {card_number}") from error
    click.echo("The account is erased.")


@registry.command("maintenance")
@database_option
@click.option("--nl", "nl", help="The message in Dutch.")
@click.option("--fr", "fr", help="The message in French.")
@click.option("--en", "en", help="The message in English.")
@click.option("--until", "until", type=click.DateTime(formats=["%Y-%m-%d %H:%M"]),
              help="Until when, Belgian time: 'YYYY-MM-DD HH:MM'.")
@click.option("--clear", is_flag=True, help="Remove the message now.")
@click.option("--actor", default="cli", show_default=True, help="Who sets it (audit log).")
def maintenance(database_url: str, nl: str | None, fr: str | None, en: str | None,
                until: datetime | None, clear: bool, actor: str) -> None:
    """Show a message on every kiosk instead of the journey, in nl, fr and en, until a time."""
    service = _service(database_url)
    if clear:
        service.clear_maintenance(actor)
        click.echo("Maintenance message removed: kiosks run as usual within 15 seconds.")
        return
    if until is None:
        raise click.UsageError("--until is required (or --clear)")
    utc = until.replace(tzinfo=BELGIUM).astimezone(UTC).replace(tzinfo=None)
    try:
        service.set_maintenance({"nl": nl or "", "fr": fr or "", "en": en or ""}, utc, actor)
    except RegistryError as error:
        problems = ", ".join(f"{k}: {v.replace('_', ' ')}" for k, v in error.fields.items())
        raise click.ClickException(f"message not set ({problems})") from error
    click.echo(f"Every kiosk shows the message until {until:%Y-%m-%d %H:%M} (Belgian time).")


@registry.command("purge")
@database_option
def purge(database_url: str) -> None:
    """Housekeeping, run every hour (deploy/linux/kiosk-registry-jobs.timer, cron or a
    scheduled task): seat offers past their time go to the next in line (and day-before
    reminders are queued); retention: idempotency keys older than 24 hours, accounts two
    years without activity or two years after the programme ended, pending accounts past
    their institution's days for an identity check, e-mail notices 30 days after sending.
    It also queues the e-mails about new courses that have settled (the registry's mail
    sender does so every round too)."""
    app = _registry_app(database_url)
    service: RegistryService = app.extensions["registry_service"]
    with closing_engine(service.store), service.store.alone("housekeeping") as mine:
        if not mine:  # two registry hosts' timers at the same hour: one does it
            click.echo("Housekeeping is running from another process or host: skipped.")
            return
        removed = app.extensions["registry_idempotency"].purge()
        click.echo(f"Removed {removed} idempotency key(s) older than 24 hours.")
        erased = service.erase_inactive()
        click.echo(f"Erased {erased} account(s) past their retention time.")
        expired = service.verification.erase_expired_pending()
        click.echo(f"Erased {expired} pending account(s) whose identity was not checked in "
                   "time.")
        told = service.alerts.tell_subscribers()
        click.echo(f"Queued {told} e-mail(s) about new courses.")
        notices = service.notices.purge()
        click.echo(f"Removed {notices} e-mail notice(s) sent (or given up) over 30 days ago.")
        synced = service.academy.purge()
        click.echo(f"Removed {synced} academy change(s) done over 30 days ago.")
        _echo_sweep(service.expire_offers())


@registry.command("expire-offers")
@database_option
def expire_offers(database_url: str) -> None:
    """End seat offers past their time and give their seats to the next in line; remind, once,
    patrons whose offer ends within a day. Run it hourly (cron or a scheduled task); `purge`
    runs it too, and every claim and promotion does it for the offers it meets."""
    _echo_sweep(_service(database_url).expire_offers())


def _echo_sweep(sweep: OfferSweep) -> None:
    click.echo(f"Ended {sweep.expired} seat offer(s) past their time; {sweep.promoted} seat(s) "
               f"given to the next in line; {sweep.reminded} reminder(s) queued.")


@registry.command("set-end-date")
@database_option
@click.argument("ends_on", type=click.DateTime(formats=["%Y-%m-%d"]), required=False)
@click.option("--actor", default="cli", show_default=True, help="Who sets it (audit log).")
def set_end_date(database_url: str, ends_on: datetime | None, actor: str) -> None:
    """Set the programme's end date (YYYY-MM-DD; none to clear it): two years later every
    account is erased by `purge`."""
    _service(database_url).set_end_date(ends_on.date() if ends_on else None, actor)
    click.echo(f"Programme end date: {ends_on.date() if ends_on else 'none'}.")


@registry.group("member-system")
def member_system() -> None:
    """The institutions' member systems (SIP2): their members sign in with their library card."""


@member_system.command("set")
@database_option
@click.argument("institution")
@click.option("--host", required=True, help="The SIP2 server of the library management system.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--tls/--no-tls", default=False, show_default=True,
              help="SIP2 over TLS (the server's certificate is checked against the system's "
                   "CA list).")
@click.option("--login", "login_user", default="", help="The SIP account (93 Login), if it "
              "needs one.")
@click.option("--password-file", type=click.Path(dir_okay=False, resolve_path=True),
              default="", help="The file that holds the SIP account's password (readable by "
              "the registry's service user only; never stored in the database).")
@click.option("--location", "location_code", default="", help="The location code (CP).")
@click.option("--sip-institution", default="", help="The institution id (AO) the member "
              "system expects.")
@click.option("--timeout", default=DEFAULT_TIMEOUT, show_default=True,
              type=click.FloatRange(0.5, 30), help="Seconds for a whole check.")
@click.option("--actor", default="cli", show_default=True, help="Who sets it (audit log).")
def member_system_set(database_url: str, institution: str, host: str, port: int, tls: bool,
                      login_user: str, password_file: str, location_code: str,
                      sip_institution: str, timeout: float, actor: str) -> None:
    """Set (or change) an institution's member system, e.g. `set ANT --host sip.antwerpen.be
    --login kiosk --password-file /etc/kiosk/sip-ant.secret`."""
    config = MemberSystemConfig(host=host, port=port, tls=tls, login_user=login_user,
                                password_file=password_file, location_code=location_code,
                                sip_institution=sip_institution, timeout=timeout)
    try:
        _service(database_url).members.configure(institution, config, actor=actor)
    except RegistryError as refusal:
        options = {"login_user": "--login", "location_code": "--location"}
        raise click.ClickException("; ".join(
            f"{options.get(k, '--' + k.replace('_', '-'))}: {PROBLEMS.get(v, v)}"
            for k, v in refusal.fields.items()) or refusal.code) from None
    click.echo(f"{institution.upper()}: members sign in with their library card, checked at "
               f"{config.address}. Try it: kiosk registry member-system check")


@member_system.command("show")
@database_option
def member_system_show(database_url: str) -> None:
    """The member systems set (never their passwords)."""
    settings = _service(database_url).members.settings()
    if not settings:
        click.echo("No member system is set: patrons sign in with accounts made at the kiosk.")
    for s in settings:
        c = s.config
        click.echo(f"{s.institution_code:<5} {c.address:<32} login={c.login_user or '-'} "
                   f"password-file={c.password_file or '-'} location={c.location_code or '-'} "
                   f"AO={c.sip_institution or '-'} timeout={c.timeout:g}s "
                   f"(set {s.updated_at:%Y-%m-%d %H:%M} UTC)")


@member_system.command("remove")
@database_option
@click.argument("institution")
@click.option("--actor", default="cli", show_default=True, help="Who removes it (audit log).")
def member_system_remove(database_url: str, institution: str, actor: str) -> None:
    """Stop checking library cards for this institution (linked members can no longer sign
    in until it is set again)."""
    try:
        _service(database_url).members.remove(institution, actor=actor)
    except RegistryError as refusal:
        raise click.ClickException(refusal.fields.get("institution", "no member system is set "
                                                      "for it")) from None
    click.echo(f"{institution.upper()}: member system removed.")


@member_system.command("check")
@database_option
def member_system_check(database_url: str) -> None:
    """Does each member system answer (SIP log-in, a question about a test card)?"""
    results = _service(database_url).members.doctor()
    if not results:
        click.echo("No member system is set.")
    for institution, ok, what in results:
        click.echo(f"{'OK  ' if ok else 'FAIL'}  {institution:<5} {what}")
    if not all(ok for _, ok, _ in results):
        sys.exit(1)


def _database_url(database_url: str) -> str:
    """The URL given, else the configured one (kiosk.cfg, KIOSK_*, the instance's SQLite),
    without opening the registry: a restore target may be empty or on an older schema."""
    if database_url:
        return database_url
    return base_app(None, None).config["DATABASE_URL"]


@registry.command("backup")
@database_option
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def registry_backup(database_url: str, dest: Path) -> None:
    """Back up the registry to DEST, online (SQLite backup API; PostgreSQL pg_dump, custom
    format). DEST is replaced atomically and made readable by its owner only."""
    url = _database_url(database_url)
    try:
        backup.backup(url, dest)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Backed up {backup.shown(url)} to {dest} ({dest.stat().st_size} bytes).")


@registry.command("restore")
@database_option
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database that already holds tables.")
def registry_restore(database_url: str, src: Path, force: bool) -> None:
    """Restore the registry from SRC (a `kiosk registry backup` file), then check its schema
    is current and show the counts that came back."""
    url = _database_url(database_url)
    try:
        restored = backup.restore(url, src, force=force)
    except backup.BackupError as error:
        raise click.ClickException(str(error)) from None
    backup.report(restored, click.echo)
    if not restored.current:  # an older backup: its data is back, but serve would refuse it
        raise click.ClickException(
            f"the restored schema is at revision {restored.revision}, this kiosk expects "
            f"{schema.HEAD_REVISION}: run `kiosk registry upgrade` before serving")


# --- A library terminal ------------------------------------------------------------------


@main.group()
def terminal() -> None:
    """Run a library terminal against a central registry."""


_env_file_option = click.option(
    "--env-file", type=click.Path(dir_okay=False), default=None,
    help="Read KIOSK_* settings from this file first, as the service does "
         "(/etc/kiosk/terminal.env; on Windows terminal.env in the instance folder).")


def _load_env_file(path: str | None) -> None:
    """The service's own settings file, over this shell's KIOSK_* variables."""
    if path:
        os.environ.update(read_env_file(path))


def _token_options(command: Callable[..., None]) -> Callable[..., None]:
    """--token and --token-file. A command line is visible to every user of the machine
    (`ps`, /proc), so the token belongs in the environment file or a file of its own;
    --token still works, with a warning, for a quick try."""
    command = click.option(
        "--token-file", metavar="FILE", default=None,  # read below: every refusal the same way
        help="Read this terminal's token from a file (owner-readable only), which keeps it "
             "off the command line.")(command)
    return click.option(
        "--token", default=None,
        help="This terminal's token from `kiosk registry add-terminal` (default: "
             "REGISTRY_TOKEN of kiosk.cfg or KIOSK_REGISTRY_TOKEN). Other users of this "
             "machine see a command line: prefer --env-file or --token-file.")(command)


def _token(token: str | None, token_file: str | None) -> str | None:
    """The token given on the command line or in --token-file; None if neither. A file
    that is missing, unreadable or empty stops the command with its reason, as a bad
    --env-file does (SystemExit)."""
    if token is not None and token_file is not None:
        raise click.UsageError("give --token or --token-file, not both")
    if token is not None:
        click.echo("Warning: --token is visible to other users of this machine (ps); put the "
                   "token in --env-file or --token-file instead.", err=True)
        return token
    if token_file is None:
        return None
    try:
        value = Path(token_file).read_text(encoding="utf-8-sig").strip()  # Notepad adds a BOM
    except OSError as exc:
        raise SystemExit(f"--token-file {token_file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SystemExit(f"--token-file {token_file}: not a text file") from None
    if not value:
        raise SystemExit(f"--token-file {token_file}: empty (it should hold the token from "
                         "`kiosk registry add-terminal`)")
    return value


@terminal.command("serve")
@click.option("--registry-url", default=None,
              help="The registry's address, e.g. https://registry.example.be "
                   "(default: REGISTRY_URL of kiosk.cfg or KIOSK_REGISTRY_URL).")
@_token_options
@click.option("--host", envvar="KIOSK_HOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="KIOSK_PORT", default=5000, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@_env_file_option
def terminal_serve(registry_url: str | None, token: str | None, token_file: str | None,
                   host: str, port: int, threads: int, env_file: str | None) -> None:
    """Serve the patron pages (waitress), talking to the registry over HTTP."""
    from waitress import serve as waitress_serve  # only to serve, as in `demo`

    _load_env_file(env_file)
    token = _token(token, token_file)
    overrides = {k: v for k, v in (("REGISTRY_URL", registry_url), ("REGISTRY_TOKEN", token))
                 if v}
    cfg, _ = checks.load_config(overrides)  # the same configuration as `kiosk doctor` checks
    if not cfg["REGISTRY_URL"]:
        raise click.UsageError("no registry: set REGISTRY_URL and REGISTRY_TOKEN in kiosk.cfg, "
                               "KIOSK_REGISTRY_URL/KIOSK_REGISTRY_TOKEN (--env-file), or "
                               "--registry-url and --token-file (`kiosk demo` runs without "
                               "one)")
    app = create_app(overrides)
    start_heartbeat(app)
    click.echo(f"Kiosk terminal on http://{host}:{port}/ → registry {app.config['REGISTRY_URL']}")
    waitress_serve(app, host=host, port=port, threads=threads)


@main.command()
@click.option("--registry-url", default=None,
              help="Check against this registry (default: REGISTRY_URL of the configuration).")
@_token_options
@click.option("--instance-path", type=click.Path(file_okay=False), default=None,
              help="The instance folder (kiosk.cfg, registry.sqlite3); default: the app's.")
@_env_file_option
def doctor(registry_url: str | None, token: str | None, token_file: str | None,
           instance_path: str | None, env_file: str | None) -> None:
    """Check this kiosk's configuration, registry, token, library, migrations, translations,
    clock and disk; exit 1 on any FAIL."""
    try:
        _load_env_file(env_file)
        token = _token(token, token_file)
    except SystemExit as exc:
        checks.render([checks.Result("config", checks.FAIL, str(exc))], click.echo)
        sys.exit(1)
    overrides = {key: value for key, value in
                 (("REGISTRY_URL", registry_url), ("REGISTRY_TOKEN", token)) if value is not None}
    results = checks.run_all(overrides, instance_path)
    checks.render(results, click.echo)
    if checks.failed(results):
        sys.exit(1)


@main.group()
def translations() -> None:
    """Extract, update, compile and check the nl/fr/en catalogues."""


def _pybabel(*args: str) -> None:
    # Babel's own command line, for translation work only: other commands start without it.
    from babel.messages.frontend import CommandLineInterface

    CommandLineInterface().run(["pybabel", "-q", *args])


def _root() -> Path:
    root = resource_dir("translations").parent
    if not (root / "babel.cfg").exists():
        raise click.ClickException("translation work needs a source checkout (babel.cfg)")
    return root


@translations.command("update")
def translations_update() -> None:
    """Extract messages from the code and merge them into every catalogue."""
    root = _root()
    pot = root / "translations" / "messages.pot"
    _pybabel("extract", "-F", str(root / "babel.cfg"), "-k", "_l", "--no-location",
             "--sort-output", "-o", str(pot), str(root))
    _pybabel("update", "-i", str(pot), "-d", str(root / "translations"), "--no-fuzzy-matching",
             "--ignore-obsolete")
    _english_is_the_source(root / "translations" / "en" / "LC_MESSAGES" / "messages.po")
    click.echo(f"Updated catalogues in {root / 'translations'}; now translate nl and fr.")


def _english_is_the_source(po_path: Path) -> None:
    """The code is written in English: its catalogue takes each message as it stands."""
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale="en")
    for message in catalog:
        if message.id and not message.string or message.string == ("", ""):
            message.string = message.id
    with po_path.open("wb") as fh:
        write_po(fh, catalog, omit_header=False, width=100)


@translations.command("compile")
def translations_compile() -> None:
    """Compile .po to .mo."""
    done = compile_catalogues(resource_dir("translations"), force=True)
    click.echo(f"Compiled {len(done)} catalogue(s).")


@translations.command("check")
def translations_check() -> None:
    """Fail on an untranslated, fuzzy or obsolete message."""
    problems = catalogue_problems(resource_dir("translations"))
    for line in problems:
        click.echo(line, err=True)
    if problems:
        sys.exit(1)
    click.echo("All catalogues complete.")
