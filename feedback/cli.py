"""`feedback …`: init, demo, serve, token create, plugins, tick, rebuild-rollups, and whatever plugins add."""

from __future__ import annotations

import getpass
import ipaddress
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from feedback import __version__, audit, passwords, serving
from feedback.db import open_database
from feedback.errors import FeedbackError
from feedback.migrations import apply_all
from feedback.plugins import PluginManager, build_plugin_manager, describe_plugins
from feedback.settings import SettingsError, load_settings, named_database
from feedback.store import DatabaseError
from feedback.store import events as event_store
from feedback.store.dialect import is_postgres_url


class Refused(click.ClickException):
    """A command line that cannot run as given: one line, exit status 2 like click's usage errors."""

    exit_code = 2


class DatabaseParam(click.ParamType):
    """--db: an SQLite file (existing, with `exists`), or a `postgresql://` URL taken as it is."""

    name = "database"

    def __init__(self, exists: bool = False) -> None:
        self.path = click.Path(dir_okay=False, exists=exists)

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if is_postgres_url(str(value)):
            return str(value)
        return self.path.convert(value, param, ctx)


DATABASE = DatabaseParam()
EXISTING_DATABASE = DatabaseParam(exists=True)
DB_HELP = "SQLite file or postgresql:// URL"


def check_folder(path: str, option: str = "--db") -> None:
    """One clear line instead of SQLite's "unable to open database file" (or a traceback) when the
    folder a file is to go in does not exist."""
    if option in ("--db", "FEEDBACK_DB") and is_postgres_url(path):
        return
    folder = Path(path).expanduser().absolute().parent
    if not folder.is_dir():
        raise click.ClickException(f"{option}: the folder {folder} does not exist; create it first")


def command_plugins() -> PluginManager:
    """The plugin manager `main` built for this command from the settings (built here when the
    command group runs without `main`, or outside a command)."""
    context = click.get_current_context(silent=True)
    root = context.find_root() if context else None
    if root is not None and isinstance(root.obj, PluginManager):
        return root.obj
    plugins = build_plugin_manager(load_settings(keep_secret=False))
    if root is not None:
        root.obj = plugins
    return plugins


def open_migrated(path: str, plugins: PluginManager | None = None):
    check_folder(path)
    try:
        db = open_database(path)
        apply_all(db, plugins or command_plugins())
    except DatabaseError as error:  # not a database, unreadable, read-only, …
        raise click.ClickException(f"--db: cannot use {path} as a database: {error}") from None
    return db


def in_transaction(db_path: str, fn, refused: tuple[type[FeedbackError], ...] = ()):
    """Run `fn(conn)` in one transaction on a migrated database; our errors become CLI errors (those of the
    `refused` kinds, which the command line is at fault for, exit 2)."""
    db = open_migrated(db_path)
    try:
        with db.conn:
            return fn(db.conn)
    except refused as error:
        raise Refused(error.message) from None
    except FeedbackError as error:
        raise click.ClickException(error.message) from None
    except DatabaseError as error:
        raise click.ClickException(f"--db: cannot write to {db_path}: {error}") from None
    finally:
        db.close()


def release_dead_leases(db, path: str) -> None:
    """When no server or command has the database open, every lease in its event log and outbox
    belongs to a process that died (e.g. killed with SIGKILL): end them, so what was in flight is
    dispatched and sent again at once rather than when the leases run out."""
    if is_postgres_url(path):
        from feedback.store import dialect_postgres

        if dialect_postgres.other_feedback_sessions(db.conn):
            return  # another node or command is connected: its leases are live (a dead one's run out)
    else:
        try:
            serving.refuse_database_in_use(path)
        except serving.DatabaseInUse:
            return  # another server runs: its leases are live
    with db.conn:
        events, rows = event_store.release_leases(db.conn)
    if events or rows:
        click.echo(f"released the leases of a stopped server: {events} event(s), {rows} delivery(ies)", err=True)


def run_jobs(db_path: str, only: list[str] | None = None, now=None) -> dict[str, bool]:
    """Run periodic jobs once against a database file, with the same store the server uses."""
    import asyncio

    from feedback.catalog import Catalog
    from feedback.db import Store
    from feedback.scheduler import run_all

    plugins = command_plugins()
    open_migrated(db_path, plugins).close()
    # Held while the jobs run, so a server starting meanwhile leaves this command's leases alone.
    held = None if is_postgres_url(db_path) else serving.hold_database(db_path)
    store = Store(db_path, plugins=plugins)
    store.start()
    try:
        return asyncio.run(run_all(store, load_settings(db=db_path), Catalog(plugins=plugins), now, only))
    finally:
        store.close()
        if held is not None:
            held.close()


@click.group()
@click.version_option(__version__, prog_name="feedback")
@click.pass_context
def cli(context: click.Context) -> None:
    """Citizen and trader satisfaction for ISO 9001 quality systems."""
    # What a command changes, the audit log says the operating-system user did at the command line.
    context.with_resource(audit.acting_as(audit.Actor("cli", os_user())))


def os_user() -> str:
    """The name of the user running the command (the uid when the system has no name for it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@cli.command()
@click.option("--db", "db_path", required=True, type=DATABASE, help=DB_HELP)
def init(db_path: str) -> None:
    """Create or migrate a database."""
    from feedback.store import dialect

    db = open_migrated(db_path)
    applied = dialect.of(db.conn).applied_migrations(db.conn)
    db.close()
    what = "tables" if dialect.is_postgres_url(db_path) else "migrations applied"
    from feedback.backup import redact

    click.echo(f"{redact(db_path)}: schema up to date ({applied} {what})")


@cli.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite file")
@click.option("--days", default=90, show_default=True, type=click.IntRange(min=0), help="Days of synthetic history")
@click.option("--seed", default=2024, show_default=True, help="Random seed (the demo is deterministic)")
@click.option("--force", is_flag=True, help="Replace an existing file")
def demo(db_path: str, days: int, seed: int, force: bool) -> None:
    """Build a database with the demo organisations and months of realistic history."""
    from feedback.demo import build_demo, sign_in_users

    path = Path(db_path)
    if path.exists():
        if not force and path.stat().st_size > 0:
            raise click.ClickException(f"{db_path} exists; pass --force to replace it")
        try:
            serving.refuse_database_in_use(db_path)
        except serving.DatabaseInUse as error:
            raise click.ClickException(str(error)) from None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    from feedback.auth import create_token
    from feedback.store.organisation import first_touchpoint_per_root

    db = open_migrated(db_path)
    try:
        summary = build_demo(db, days=days, seed=seed, plugins=command_plugins())
        with db.conn:
            summary["admin_token"] = create_token(db.conn, "admin", "admin", None)
            # A way into /manage/: an admin and a unit manager with generated passwords.
            summary["sign_in"] = sign_in_users(db.conn)
        # One survey page and one kiosk touchpoint per agency, to try straight away.
        for key, kind, prefix in (("survey_pages", "qr", "/s/"), ("kiosk_touchpoints", "kiosk", "")):
            summary[key] = {
                root: f"{prefix}{token}" for root, token in first_touchpoint_per_root(db.conn, kind).items()
            }
    finally:
        db.close()
    # Judge the objectives once, so the demo opens with the nonconformities its history deserves.
    summary["jobs"] = run_jobs(db_path, ["objectives.evaluate", "actions.deadlines"])
    click.echo(json.dumps(summary, ensure_ascii=False))


@cli.command()
@click.option("--db", "db_path", default=None, type=DATABASE, help=DB_HELP)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes; each has its own writer thread and caches",
)
def serve(db_path: str | None, host: str, port: int, workers: int) -> None:
    """Run the server (granian, ASGI)."""
    from granian import Granian
    from granian.constants import Interfaces

    from feedback.backup import redact
    from feedback.logs import granian_log_config

    # A server never makes ./feedback.db by default: a database named nowhere is a mistake, not a wish.
    named = db_path or named_database()
    if not named:
        raise Refused("serve: name the database with --db PATH or FEEDBACK_DB; nothing is made in the current folder")
    check_folder(named, "--db" if db_path else "FEEDBACK_DB")
    if db_path:
        os.environ["FEEDBACK_DB"] = db_path if is_postgres_url(db_path) else str(Path(db_path).resolve())
    try:
        serving.refuse_port_in_use(host, port)
    except serving.PortInUse as error:
        raise click.ClickException(str(error)) from None
    settings = load_settings()
    db = open_migrated(settings.db)
    try:
        release_dead_leases(db, settings.db)
    finally:
        db.close()
    own_address = f"http://{host}:{port}"
    warning = public_url_warning(settings.public_url, own_address)
    if warning:
        announce(settings.log_format, warning, warning=True)
    os.environ.setdefault("FEEDBACK_PUBLIC_URL", own_address)
    # The workers inherit the lock (`demo --force` refuses a held file) and die with this process.
    # A file only: several nodes share a PostgreSQL database. Open for as long as the server runs.
    held = None if is_postgres_url(settings.db) else serving.hold_database(settings.db)  # noqa: F841
    os.environ[serving.PARENT_ENV] = str(os.getpid())
    announce(
        settings.log_format,
        f"feedback {__version__} serving {redact(os.environ.get('FEEDBACK_DB', ''))} on http://{host}:{port}",
    )
    # granian runs each worker on uvloop when it is installed (a dependency): waking the event loop for
    # each request handed over from granian's threads costs far less there than in asyncio's own loop.
    # A worker that dies is started again; one that dies again within seconds of that makes this
    # process exit with status 1, for systemd to restart the whole server. On SIGTERM each worker
    # finishes its requests and flushes its writer, or is killed after STOP_GRACE_SECONDS.
    server = Granian(
        "feedback.web.app:create_app_from_env",
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers,
        log_access=False,
        log_dictconfig=granian_log_config(settings.log_format),
        respawn_failed_workers=True,
        workers_kill_timeout=serving.STOP_GRACE_SECONDS,
    )
    # A worker that ends on the stop signal before granian's main process tells it to is no crash.
    if serving.serve_to_a_clean_stop(server):
        announce(
            settings.log_format,
            "a worker ended on the stop signal before granian's main process told it to: a clean stop, status 0",
        )


def announce(log_format: str, text: str, *, warning: bool = False) -> None:
    """A line `feedback serve` writes before its workers log: text (`warning: …`), or with
    FEEDBACK_LOG_FORMAT=json a JSON line like every other line of the log."""
    if log_format == "json":
        import logging

        from feedback.logs import json_line

        click.echo(json_line(logging.WARNING if warning else logging.INFO, "feedback.serve", text), err=True)
    else:
        click.echo(f"warning: {text}" if warning else text, err=True)


def public_url_warning(public_url: str | None, own_address: str) -> str | None:
    """Why the QR codes, posters and links would carry an address phones cannot reach; None when fine."""
    if not public_url:
        return (
            f"FEEDBACK_PUBLIC_URL is not set, so every QR code, poster and link prints {own_address};"
            " set it to the address citizens' phones reach"
        )
    host = (urlsplit(public_url).hostname or "").rstrip(".")
    try:
        loopback = host == "localhost" or host.endswith(".localhost") or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost
        loopback = False
    if loopback:
        return (
            f"FEEDBACK_PUBLIC_URL is {public_url}, a loopback address: every QR code, poster and link prints"
            " it, and no phone reaches it"
        )
    return None


@cli.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--user", required=True)
@click.option(
    "--role",
    type=click.Choice(["admin", "manager", "viewer", "auditor"]),
    default=None,
    help="Role of a new user [default: admin]; an existing user keeps its own",
)
@click.option("--unit", default=None, help="Unit of a new user (the token's scope); an existing user keeps its own")
def token_create(db_path: str, user: str, role: str | None, unit: str | None) -> None:
    """Print a new API token, alone, on the last line (creates the user if needed).

    The token has its user's role and unit. An existing user is never changed: a --role or --unit that
    differs from the user's own is refused (exit status 2)."""
    from feedback import auth

    def create(conn) -> tuple[str, str, str | None]:
        found = auth.find_user(conn, user)
        if found is None:
            return auth.create_token(conn, user, role or "admin", unit), role or "admin", unit
        for option, given, own in (("--role", role, found["role"]), ("--unit", unit, found["unit"])):
            if given is not None and given != own:
                has = f"{option[2:]} {own!r}" if own else f"no {option[2:]}"
                raise click.BadParameter(
                    f"user {user!r} has {has}, not {given!r}: a token takes its user's role and unit, and"
                    " `token create` never changes an existing user (change it with `feedback user add` or in"
                    " the manager app)",
                    param_hint=f"'{option}'",
                )
        return auth.issue_token(conn, user)["token"], found["role"], found["unit"]

    value, role, unit = in_transaction(db_path, create)
    click.echo(f"token for {user} ({role}{', unit ' + unit if unit else ''}):", err=True)
    click.echo(value)


@cli.command("plugins")
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False))
def plugins_command(db_path: str | None) -> None:
    """List loaded plugins and the hooks each implements, as JSON."""
    click.echo(json.dumps(describe_plugins(command_plugins()), indent=2))


@cli.command("tick")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option(
    "--now", "now_text", default=None, help="Run as of this RFC 3339 time (catch up a missed day) [default: now]"
)
@click.option("--job", "only", multiple=True, help="Run only this job (repeatable)")
def tick(db_path: str, now_text: str | None, only: tuple[str, ...]) -> None:
    """Run every periodic job once: objective evaluation, deadlines, effectiveness, deliveries, digests.

    The server runs them by itself; this is for cron (with FEEDBACK_JOBS=0) and for catching up.
    """
    from datetime import UTC, datetime

    from feedback.ingest import parse_time

    try:
        now = parse_time(now_text, "now") if now_text else datetime.now(UTC)
    except FeedbackError as error:
        raise click.ClickException(error.message) from None
    check_job_names(db_path, only)
    results = run_jobs(db_path, list(only) or None, now)
    click.echo(json.dumps({"now": now.isoformat(), "jobs": results}, indent=2))
    if not all(results.values()):
        failed = ", ".join(name for name, ok in results.items() if not ok)
        raise click.ClickException(f"jobs failed: {failed} (see the log above)")


def check_job_names(db_path: str, names: tuple[str, ...]) -> None:
    """Refuse (exit 2) a --job that names no job, listing the jobs there are."""
    from feedback.scheduler import collect_jobs

    if not names:
        return
    known = [job.name for job in collect_jobs(load_settings(db=db_path, keep_secret=False), command_plugins())]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise Refused(f"--job: no job named {', '.join(map(repr, unknown))}; the jobs are: {', '.join(known)}")


@cli.command("rebuild-rollups")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--from", "date_from", default=None, help="First local day to rebuild, YYYY-MM-DD [default: the first]")
@click.option("--to", "date_to", default=None, help="Last local day to rebuild, YYYY-MM-DD [default: the last]")
def rebuild_rollups(db_path: str, date_from: str | None, date_to: str | None) -> None:
    """Recompute every rollup table from the stored responses, in one transaction.

    For responses written other than through ingest (a bulk import, a repair). Safe beside a running
    server: readers see the old rollups until the commit; the server's writes wait meanwhile.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from feedback.rollup_rebuild import check_period, rebuild_file

    try:
        check_period(date_from, date_to)
    except FeedbackError as error:
        raise click.ClickException(error.message) from None
    open_migrated(db_path).close()
    progress = Progress(
        TextColumn("[bold]rebuild rollups"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[phase]}"),
        TextColumn("{task.fields[responses]} responses"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task("rebuild", total=None, phase="waiting for the write lock", responses=0)

        def show(phase: str, done: int, total: int, responses: int) -> None:
            progress.update(task, completed=done, total=total, phase=phase, responses=responses)

        summary = rebuild_file(db_path, date_from, date_to, show)
    click.echo(json.dumps(summary.as_dict(), indent=2))


@cli.command("qr")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--unit", required=True, help="Print every live touchpoint of this unit's subtree")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="PDF file to write")
@click.option("--paper", type=click.Choice(["A4", "A5"], case_sensitive=False), default="A4", show_default=True)
@click.option(
    "--public-url",
    default=None,
    help="Base URL in the codes [default: FEEDBACK_PUBLIC_URL, else http://127.0.0.1:8000]",
)
def qr_command(db_path: str, unit: str, out: str, paper: str, public_url: str | None) -> None:
    """Write printable QR posters (PDF, one page per touchpoint) for a unit, offline."""
    from feedback.catalog import load_snapshot
    from feedback.posters import render_posters, unit_tokens

    check_folder(out, "--out")
    db = open_migrated(db_path)
    try:
        snapshot = load_snapshot(db.conn, command_plugins())
    finally:
        db.close()
    if unit not in snapshot.units:
        raise click.ClickException(f"unit: no unit {unit!r}")
    tokens = unit_tokens(snapshot, unit)
    if not tokens:
        raise click.ClickException(f"unit: {unit!r} has no touchpoints to print")
    base = (public_url or load_settings().public_url or "http://127.0.0.1:8000").rstrip("/")
    try:
        content = render_posters(snapshot, tokens, base, paper.upper())
    except FeedbackError as error:
        raise click.ClickException(error.message) from None
    try:
        Path(out).write_bytes(content)
    except OSError as error:
        raise click.ClickException(f"--out: cannot write {out}: {error.strerror or error}") from None
    click.echo(f"{out}: {len(tokens)} poster(s) on {paper.upper()} for unit {unit}, codes for {base}", err=True)


@cli.group("paper")
def paper_group() -> None:
    """Paper forms: print them, and read scanned ones."""


#: The option of `paper forms` each field of the print request comes from.
PRINT_OPTIONS = {"touchpoint": "--touchpoint", "lang": "--lang", "count": "--count", "paper": "--paper"}


@paper_group.command("forms")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--touchpoint", required=True, help="The touchpoint's token or short code")
@click.option("--lang", default=None, help="The forms' language (vi, ru, zh, en) [default: the touchpoint's]")
@click.option("--count", default="1", show_default=True, help="How many forms, each with its own serial")
@click.option("--paper", default="A4", show_default=True, help="A4 or A5")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PDF file to write")
def paper_forms_command(db_path: str, touchpoint: str, lang: str | None, count: str, paper: str, out: str) -> None:
    """Write printable paper forms of the survey version in force (PDF, one form per page) and register
    their serials. Exit 2 naming the option for a bad touchpoint, language, count or paper."""
    from feedback.catalog import load_snapshot
    from feedback.paper_pdf import plan_print, register_job, render_forms

    check_folder(out, "--out")
    db = open_migrated(db_path)
    try:
        snapshot = load_snapshot(db.conn, command_plugins())
        try:
            job = plan_print(snapshot, touchpoint, lang=lang, count=count, paper=paper, printed_by=f"cli:{os_user()}")
        except FeedbackError as error:
            option = PRINT_OPTIONS.get(error.field or "", "--touchpoint")
            raise Refused(f"{option}: {error.message.split(': ', 1)[-1]}") from None
        content = render_forms(snapshot, job)
        try:
            with db.conn:
                register_job(job)(db.conn)
        except DatabaseError as error:
            raise click.ClickException(f"--db: cannot write to {db_path}: {error}") from None
    finally:
        db.close()
    try:
        Path(out).write_bytes(content)
    except OSError as error:
        raise click.ClickException(f"--out: cannot write {out}: {error.strerror or error}") from None
    first, last = job.forms[0]["serial"], job.forms[-1]["serial"]
    click.echo(
        f"{out}: {len(job.forms)} form(s) of {job.version.slug} v{job.version.version} in {job.lang} on {job.paper}"
        f" for {job.touchpoint.token}, serials {first} … {last}",
        err=True,
    )


@paper_group.command("read")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option(
    "--as",
    "as_user",
    default=None,
    help="The user who enters the forms (their unit's subtree only) [default: the operating-system user, any unit]",
)
@click.argument("scans", type=click.Path())
def paper_read(db_path: str, as_user: str | None, scans: str) -> None:
    """Read scanned paper forms: a PDF (every page), an image, or a folder of PDFs and images (png, jpg,
    tiff). Pages read with confidence are stored; the others wait at /manage/entry/review. Prints a JSON
    summary (pages, stored, duplicates, queued with their reasons, conflicts, refused); exit 2 naming
    the file when one cannot be read."""
    import asyncio

    from feedback import auth
    from feedback.catalog import Catalog
    from feedback.db import Store
    from feedback.paper_pages import UnreadableInput, path_pages, scan_files
    from feedback.paper_review import read_scans

    try:
        files = scan_files(Path(scans))
    except UnreadableInput as error:
        raise Refused(f"{error.name}: {error.why}") from None
    plugins = command_plugins()
    db = open_migrated(db_path, plugins)
    try:
        user = auth.find_user(db.conn, as_user) if as_user else None
    finally:
        db.close()
    if as_user and user is None:
        raise Refused(f"--as: no user {as_user!r}")
    unit = user["unit"] if user else None
    by = as_user or f"cli:{os_user()}"
    secret = load_settings(db=db_path).secret  # the server's: the response ids of forms are keyed with it

    async def read() -> dict:
        catalog = Catalog(plugins=plugins)
        snapshot = await store.read(catalog.reload)
        may_enter = (lambda code: snapshot.in_subtree(code, unit)) if unit else None
        summary = await read_scans(
            store, snapshot, path_pages(files), by=by, unit=unit, secret=secret, may_enter=may_enter
        )
        return summary.as_dict()

    store = Store(db_path, plugins=plugins)
    store.start()
    try:
        summary = asyncio.run(read())
    except UnreadableInput as error:
        raise Refused(f"{error.name}: {error.why}") from None
    finally:
        store.close()
    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))


@cli.group()
def kiosk() -> None:
    """Kiosk tablets."""


@kiosk.command("enroll")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--touchpoint", required=True, help="The kiosk touchpoint's token")
def kiosk_enroll(db_path: str, touchpoint: str) -> None:
    """Print a one-time 6-digit enrollment code (valid 15 minutes), alone on the last line."""
    from feedback.kiosks import create_enrollment

    code, expires = in_transaction(db_path, lambda conn: create_enrollment(conn, touchpoint, "cli"))
    click.echo(f"enter this code at /kiosk/ on the tablet before {expires}:", err=True)
    click.echo(code)


@cli.group("exposure")
def exposure_group() -> None:
    """Exposure counts: customers served and offered a survey, per unit, service and day."""


@exposure_group.command("import")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True))
def exposure_import(db_path: str, csv_file: str) -> None:
    """Import a CSV with the header unit,service,day,served[,offered]; all rows or none."""
    from feedback.catalog import load_snapshot
    from feedback.exposure import parse_csv, store_items

    try:
        text = Path(csv_file).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise click.ClickException(f"{csv_file}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise click.ClickException(f"{csv_file}: cannot read it: {error.strerror or error}") from None

    def load(conn) -> int:
        return store_items(conn, parse_csv(text, load_snapshot(conn, command_plugins())), source="csv")

    stored = in_transaction(db_path, load)
    click.echo(f"{stored} rows stored from {csv_file}")


def import_table(db_path: str, file: str, load) -> None:
    """Run `load(conn, data)` on a file's bytes in one transaction and print its JSON summary. A file with
    problems writes nothing: each problem (its line and column) on stderr, exit status 2."""
    from feedback.sheets import Rejected

    try:
        data = Path(file).read_bytes()
    except OSError as error:
        raise click.ClickException(f"{file}: cannot read it: {error.strerror or error}") from None
    rejected: list[Rejected] = []

    def run(conn) -> dict[str, int]:
        try:
            return load(conn, data)
        except Rejected as error:
            rejected.append(error)
            raise  # rolls the transaction back

    try:
        summary = in_transaction(db_path, run)
    except click.ClickException:
        if not rejected:
            raise
        for problem in rejected[0].problems:
            click.echo(f"{file}: {problem.readable()}", err=True)
        click.echo(f"{file}: {len(rejected[0].problems)} problem(s); nothing was written", err=True)
        sys.exit(2)
    click.echo(json.dumps(summary, ensure_ascii=False))


@cli.group("cases")
def cases_group() -> None:
    """Dossiers (cases) and their deadlines, from a one-stop or customs system."""


@cases_group.command("import")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def cases_import(db_path: str, file: str) -> None:
    """Import dossiers from a .csv or .xlsx table with the columns ref,unit,service,received,due,returned,
    status,channel (ref, unit, received and due required), all or nothing; a reference stored before is
    updated. Prints {"added", "updated", "unchanged"}."""
    from feedback.catalog import load_snapshot
    from feedback.dossiers import parse_file, store_batch

    def load(conn, data: bytes) -> dict[str, int]:
        snapshot = load_snapshot(conn, command_plugins())
        return store_batch(conn, snapshot, parse_file(data, file, snapshot), source="import")

    import_table(db_path, file, load)


@cli.group("indicators")
def indicators_group() -> None:
    """Other quality indicators (error rate, plan completion, …): figures per unit and period."""


@indicators_group.command("import")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def indicators_import(db_path: str, file: str) -> None:
    """Import figures from a .csv (or .xlsx) table with the columns indicator,unit,period,numerator,
    denominator (a period is 2026-03, 2026-Q1 or 2026), all or nothing; a figure stored before for the
    same indicator, unit and period is replaced. Prints {"added", "updated", "unchanged"}."""
    from feedback.catalog import load_snapshot
    from feedback.indicators import definitions, parse_file, store_figures

    def load(conn, data: bytes) -> dict[str, int]:
        plugins = command_plugins()
        snapshot = load_snapshot(conn, plugins)
        return store_figures(conn, parse_file(data, file, snapshot, definitions(conn, plugins)), source="import")

    import_table(db_path, file, load)


@cli.group("import")
def import_group() -> None:
    """Bulk imports."""


@import_group.command("catalogue")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--dry-run", is_flag=True, help="Check the file and print what it would change; write nothing")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def import_catalogue_command(db_path: str, dry_run: bool, file: str) -> None:
    """Import units, services and touchpoints from an .xlsx workbook or a .csv file, all or nothing.

    Prints a JSON summary (added, updated, unchanged per kind). When anything is wrong: exit status 2,
    every problem as JSON on stdout ({"sheet", "line", "column", "message"}) and one per line on stderr,
    and nothing written."""
    import asyncio

    from feedback.catalogue_import import CatalogueRejected, import_catalogue, read_catalogue
    from feedback.db import Store

    try:
        data = Path(file).read_bytes()
    except OSError as error:
        raise click.ClickException(f"{file}: cannot read it: {error.strerror or error}") from None
    catalogue = read_catalogue(data, file)
    plugins = command_plugins()
    open_migrated(db_path, plugins).close()
    store = Store(db_path, plugins=plugins)
    store.start()
    try:
        summary = asyncio.run(import_catalogue(store, catalogue, plugins=plugins, dry_run=dry_run))
    except CatalogueRejected as rejected:
        click.echo(json.dumps([p.as_dict() for p in rejected.problems], ensure_ascii=False, indent=2))
        click.echo(f"{file}: {len(rejected.problems)} problem(s); nothing was written", err=True)
        for problem in rejected.problems:
            click.echo(f"  {problem.readable()}", err=True)
        sys.exit(2)
    finally:
        store.close()
    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))


def people_lang() -> str:
    """The language of messages meant for people: the first of vi, ru, zh, en the locale names (LC_ALL,
    LC_MESSAGES, LANG), else English."""
    from feedback.models import LANGUAGES

    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        code = os.environ.get(name, "")[:2].lower()
        if code:
            return code if code in LANGUAGES else "en"
    return "en"


def say(message: str, **values: str) -> None:
    """A message for people, on stderr, in their language (`people_lang`)."""
    from feedback.i18n import gettext_for

    click.echo(gettext_for(people_lang())(message) % values, err=True)


@cli.group("federation")
def federation_group() -> None:
    """Reporting upward: pair this installation with a parent, or a child with this one."""


@federation_group.command("invite")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--unit", required=True, help="The unit of this installation the child's tree will hang under")
@click.option(
    "--replace",
    is_flag=True,
    help="A child reports under the unit already: remove it when the new one joins (a child pairing again)",
)
def federation_invite(db_path: str, unit: str, replace: bool) -> None:
    """Print a one-time pairing code for a child installation, alone on the last line (valid 7 days)."""
    from feedback import federation
    from feedback.errors import Conflict

    code, expires = in_transaction(
        db_path, lambda conn: federation.create_invite(conn, unit, os_user(), replace), refused=(Conflict,)
    )
    say(
        "Pairing code for a child installation whose units will hang under %(unit)s, valid until %(expires)s."
        " Give it to the child's administrator, who runs feedback federation join with it:",
        unit=unit,
        expires=expires,
    )
    click.echo(code)


@federation_group.command("join")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--parent", "parent_url", required=True, help="The parent installation's address (http:// or https://)")
@click.option("--code", required=True, help="The pairing code the parent's administrator gave")
@click.option("--name", default=None, help="This installation's name at the parent [default: its root units' names]")
@click.option(
    "--unit", "units", multiple=True, help="A root unit to report, with its subtree (repeatable) [default: every root]"
)
@click.option("--force", is_flag=True, help="Replace the link to a parent this installation already reports to")
def federation_join(
    db_path: str, parent_url: str, code: str, name: str | None, units: tuple[str, ...], force: bool
) -> None:
    """Pair with a parent installation: make a key pair, send the public key, keep the private one encrypted.

    Prints the parent's answer as JSON. From then on the job federation.report sends each closed day."""
    from feedback import federation_child
    from feedback.catalog import load_snapshot
    from feedback.store import federation as federation_store

    settings = load_settings(db=db_path)

    def prepare(conn) -> tuple[list[str], str, dict | None]:
        snapshot = load_snapshot(conn, command_plugins())
        roots = federation_child.root_units(snapshot, list(units))
        return roots, name or federation_child.default_name(snapshot, roots), federation_store.link(conn)

    roots, own_name, existing = in_transaction(db_path, prepare)
    if existing is not None and not force:
        raise Refused(
            f"--parent: this installation reports to {existing['parent_url']} already (as {existing['child_id']});"
            " pass --force to replace that link"
        )
    try:
        joined = federation_child.join_parent(parent_url, code, own_name, roots, settings.secret)
    except FeedbackError as error:
        raise click.ClickException(error.message) from None
    in_transaction(db_path, lambda conn: federation_child.save_link(conn, joined))
    answer = joined["answer"]
    say(
        "Joined %(parent)s as child %(child)s: its units appear there under %(unit)s. The job federation.report"
        " sends each closed day (hourly in the server, or now with feedback tick --job federation.report).",
        parent=joined["parent_url"],
        child=answer["child"],
        unit=answer["unit"],
    )
    click.echo(json.dumps({"parent": joined["parent_url"], **answer, "units": roots}, ensure_ascii=False))


@federation_group.command("status")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
def federation_status(db_path: str) -> None:
    """Print, as JSON, the link to the parent (with the days it acknowledged and the last error) and the
    child installations that report here."""
    from feedback import federation, federation_child

    def read(conn) -> dict:
        return {
            "parent": federation_child.link_status(conn),
            "children": list(federation.reported_children(conn).values()),
        }

    click.echo(json.dumps(in_transaction(db_path, read), ensure_ascii=False, indent=2))


@federation_group.command("remove")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--child", required=True, help="The id of the child installation to remove (feedback federation status)")
def federation_remove(db_path: str, child: str) -> None:
    """On the parent: remove a child installation. Its reported figures stop counting in every rate, objective
    and review pack, its reports are refused from then on; its stored reports stay for verify. Prints JSON."""
    from feedback import federation
    from feedback.errors import NotFound

    result = in_transaction(db_path, lambda conn: federation.remove_child(conn, child), refused=(NotFound,))
    click.echo(json.dumps(result, ensure_ascii=False))


@federation_group.command("verify")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--child", default=None, help="Only this child installation's reports [default: every child's]")
def federation_verify(db_path: str, child: str | None) -> None:
    """On the parent: re-check every stored report's signature against the child's stored public key, and its
    content hash. Reads only. Exit 0 with a JSON summary, or 2 naming each report (child/day) that fails."""
    from feedback import federation

    result = in_transaction(db_path, lambda conn: federation.verify_reports(conn, child))
    click.echo(json.dumps(result, ensure_ascii=False, indent=2))
    if result["bad"]:
        named = ", ".join(f"{item['child']}/{item['day']}: {item['problem']}" for item in result["bad"])
        raise Refused(f"federation verify: {len(result['bad'])} report(s) do not hold: {named}")


@cli.group("user")
def user_group() -> None:
    """Users of the manager web app."""


@user_group.command("add")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option("--user", "name", required=True, help="User name (the sign-in name)")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
@click.option("--role", type=click.Choice(["admin", "manager", "viewer", "auditor"]), required=True)
@click.option("--unit", default=None, help="The unit whose subtree the user sees (optional for admin)")
@click.option("--email", default=None)
@click.option("--lang", type=click.Choice(["vi", "ru", "zh", "en"]), default=None)
def user_add(
    db_path: str, name: str, password_stdin: bool, role: str, unit: str | None, email: str | None, lang: str | None
) -> None:
    """Create or update a user; with --password-stdin also set the password (argon2id)."""
    from feedback.auth import save_user

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    in_transaction(db_path, lambda conn: save_user(conn, name, role, unit, password=password, email=email, lang=lang))
    click.echo(f"user {name} ({role}{', unit ' + unit if unit else ''}) saved", err=True)


@cli.command("backup")
@click.option("--db", "db_path", default=None, help="SQLite file or postgresql:// URL [default: FEEDBACK_DB]")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the backups")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Keep the N newest backups in --out; older ones are deleted once the new one is in place [default: all]",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds the copy and its check may take; past them the run fails and keeps nothing",
)
def backup_command(db_path: str | None, out: str, keep: int | None, deadline: float) -> None:
    """Write a checked backup into --out (feedback-<UTC time>.db, .dump for PostgreSQL); print a JSON summary.

    SQLite: the online backup API while the server keeps writing, then integrity_check and the row counts
    of every table; PostgreSQL: pg_dump --format=custom, checked with pg_restore --list. A failed run
    leaves no file that looks like a backup and deletes none."""
    from feedback.backup import BackupFailed, backup, is_postgres_url

    named = db_path or named_database()
    if not named:
        raise Refused("--db: name the database with --db or FEEDBACK_DB")
    if not is_postgres_url(named) and not Path(named).is_file():
        raise Refused(f"--db: the database {named} does not exist")
    try:
        summary = backup(named, Path(out), keep=keep, deadline=deadline)
    except BackupFailed as error:
        raise click.ClickException(error.message) from None
    click.echo(json.dumps(summary, indent=2))


@cli.command("restore")
@click.option(
    "--from", "source", required=True, type=click.Path(dir_okay=False, exists=True), help="A backup file to restore"
)
@click.option("--db", "db_path", required=True, help="SQLite file or postgresql:// URL to restore into")
@click.option("--force", is_flag=True, help="Replace an existing database")
@click.option("--clean", is_flag=True, help="PostgreSQL, with --force: drop the database's objects first")
def restore_command(source: str, db_path: str, force: bool, clean: bool) -> None:
    """Check a backup, then put it in place as the database; refuses a database a server is using.

    SQLite: the file is copied beside the database and renamed over it (its old -wal and -shm removed);
    PostgreSQL: pg_restore into an empty database with no other session connected."""
    from feedback.backup import BackupFailed, is_postgres_url, restore

    if clean and not is_postgres_url(db_path):
        raise Refused("--clean: only for a PostgreSQL database; an SQLite file is replaced whole (--force)")
    try:
        summary = restore(Path(source), db_path, force=force, clean=clean)
    except BackupFailed as error:
        raise click.ClickException(error.message) from None
    click.echo(json.dumps(summary, indent=2))


@cli.group("audit")
def audit_group() -> None:
    """The audit log: verify its chain, the seals of the responses and the records against it."""


@audit_group.command("verify")
@click.option("--db", "db_path", required=True, type=EXISTING_DATABASE, help=DB_HELP)
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    metavar="SEQ:HASH",
    help="An entry's seq and hash kept elsewhere (printed in a review pack or a digest mail); repeatable",
)
def audit_verify(db_path: str, anchors: tuple[str, ...]) -> None:
    """Recompute the audit log's hash chain and the daily seals of the responses, and compare each tracked
    record (unit, user, touchpoint, objective, …) with its last logged state. Reads only.

    Exit 0 with a one-line summary, or 1 naming the first entry (seq), day (unit/day) or record (kind/id)
    that does not match."""
    from feedback.audit_verify import Mismatch, verify_database

    kept: dict[int, str] = {}
    for anchor in anchors:
        seq, _, digest = anchor.partition(":")
        if not seq.isdecimal() or len(digest.strip()) != 64:
            raise Refused(f"--anchor: SEQ:HASH, the entry's number and its 64-character hash, not {anchor!r}")
        kept[int(seq)] = digest.strip().lower()
    try:
        report = verify_database(db_path, kept)
    except Mismatch as error:
        raise click.ClickException(f"audit verify failed: {error}") from None
    except DatabaseError as error:
        raise click.ClickException(f"--db: cannot read {db_path}: {error}") from None
    click.echo(report.summary())


@cli.command("migrate")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False), help="The SQLite file to copy")
@click.option("--to", "target", required=True, help="An empty PostgreSQL database: postgresql://…")
def migrate_command(source: str, target: str) -> None:
    """Copy an SQLite database into an empty PostgreSQL one: every table, sequence and the comment search.

    The copy is one transaction; the rows of every table are then counted on both sides and printed as
    JSON (exit 1 when they differ). Stop the server first: what it writes during the copy is not copied."""
    from feedback.moving import TargetNotEmpty, copy_sqlite_to_postgres
    from feedback.store.dialect import is_postgres_url

    if not is_postgres_url(target):
        raise Refused("--to: a PostgreSQL database URL, postgresql://user@host/name")
    if not Path(source).is_file():
        raise Refused(f"--from: the database {source} does not exist")
    try:
        serving.refuse_database_in_use(source)
    except serving.DatabaseInUse:
        raise click.ClickException(f"--from: a server is using {source}; stop it first") from None
    try:
        summary = copy_sqlite_to_postgres(
            source, target, command_plugins(), lambda table, rows: click.echo(f"{table}: {rows}", err=True)
        )
    except TargetNotEmpty as error:
        raise click.ClickException(error.message) from None
    except DatabaseError as error:
        raise click.ClickException(f"cannot copy: {error}") from None
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(summary, indent=2))


def main() -> None:
    try:
        # One plugin manager for the command, from the settings: plugins may add commands to the group.
        settings = load_settings(keep_secret=False)
        plugins = build_plugin_manager(settings)
        # The cost of the password hashes a command makes (users, the demo's sign-ins).
        passwords.use_hashing(settings.password_hashing)
        plugins.hook.register_commands(cli=cli)
        cli(prog_name="feedback", obj=plugins)
    except SettingsError as error:  # a FEEDBACK_* variable or the config file: one line, not a traceback
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
