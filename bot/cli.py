"""The ``unioncard`` command line.

Every command takes the global ``--config PATH`` (else ``$UNIONCARD_CONFIG``); a bad or missing
config value prints one line and exits with code 2. Commands that use the database check first
that its schema is current and otherwise ask for ``unioncard db upgrade`` (exit code 2).

Other parts of the project add command groups as modules ``bot/commands_<name>.py`` exposing
``register(subparsers)``; list such a module in :data:`COMMAND_MODULES`. A command's parser sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code); the
helpers :func:`settings_of` and :func:`run_async` are for those modules to use.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

from storage.settings import ConfigError, Settings, load_settings, require_secret_key

# Modules exposing ``register(subparsers)``; others add theirs here (small additive edit).
COMMAND_MODULES: tuple[str, ...] = ("bot.commands_reminders", "bot.commands_approvals")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A command that cannot go on; ``str()`` is printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings for this invocation (``--config`` or ``$UNIONCARD_CONFIG``, then env)."""
    cached = getattr(args, "_settings", None)
    if cached is None:
        from services import clock
        from services.redact import remember_settings

        cached = load_settings(args.config)
        remember_settings(cached)  # never logged, stored or printed from now on
        clock.configure(cached.reminders.timezone)
        args._settings = cached
    return cached


def run_async(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine; ``None`` means success."""
    result = asyncio.run(coro)
    return EXIT_OK if result is None else int(result)


def _lazy(module: str, attr: str, what: str) -> Callable[..., Any]:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            raise CommandError(
                f"{what} is not available in this build ({module} is missing)"
            ) from None
        raise
    fn = getattr(mod, attr, None)
    if fn is None:
        raise CommandError(f"{what} is not available in this build ({module}.{attr} is missing)")
    return fn


async def _require_schema(settings: Settings) -> None:
    from storage.schema import SchemaBehind, ensure_current

    try:
        await ensure_current(settings.database.url)
    except SchemaBehind as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def _date(value: str) -> date:
    from services.validators import Invalid, parse_date

    try:
        return parse_date(value)
    except Invalid:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def _positive(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def _demo_members(value: str) -> int:
    n = int(value.replace("_", "").replace(",", ""))
    if not 0 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError("must be between 0 and 1,000,000")
    return n


# --- serve / worker / demo -----------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    require_secret_key(settings)
    return run_async(_with_schema(settings, "bot.app", "run_serve", "serve"))


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    require_secret_key(settings)
    return run_async(_with_schema(settings, "bot.worker", "run_worker", "worker"))


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    run_demo = _lazy("bot.demo", "run_demo", "demo")
    result = run_demo(settings, args)
    if asyncio.iscoroutine(result):
        return run_async(result)
    return EXIT_OK if result is None else int(result)


async def _with_schema(settings: Settings, module: str, attr: str, what: str) -> int | None:
    """Check the schema, then run ``module.attr(settings)`` (async or plain)."""
    await _require_schema(settings)
    result = _lazy(module, attr, what)(settings)
    if asyncio.iscoroutine(result):
        result = await result
    return result if isinstance(result, int) else None


# --- db ------------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.migrations import upgrade

    settings = settings_of(args)
    revision = upgrade(settings.database.url, args.revision)
    print(f"database schema is at {revision}")
    return EXIT_OK


# --- import / export / cycle / demo-data ---------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    from services import imports

    settings = settings_of(args)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"file not found: {path}", EXIT_USAGE)

    async def go() -> int:
        await _require_schema(settings)
        from storage.db import Database

        db = Database(settings.database.url)
        try:
            report = await imports.run_import(
                db,
                args.kind,
                path,
                dry_run=args.dry_run,
                skip_errors=args.skip_errors,
                progress=None if args.quiet else imports.StderrProgress(),
            )
            if args.kind == "units" and report.written:
                # a unit moved under another parent: its pending review goes to the new chain
                from services import reroute

                moved = await reroute.reroute_moved(db, settings)
                if moved:
                    print(
                        f"{len(moved)} 份待审核的年审因单位隶属调整已改由新的上级工会审核",
                        file=sys.stderr,
                    )
            if args.kind == "operators" and report.ok and not args.dry_run:
                # a level that waited for an approver gets its cards now (M3)
                from services import approvals

                sent = await approvals.send_all_pending_cards(db, settings)
                if sent:
                    print(
                        f"已向新登记的审核人补发待审核卡片 {sum(sent.values())} 张", file=sys.stderr
                    )
        finally:
            await db.dispose()
        if args.errors and report.errors:
            imports.write_error_report(report, Path(args.errors))
            print(f"错误清单已写入 {args.errors}", file=sys.stderr)
        print(report.render())
        return EXIT_OK if report.ok else EXIT_FAILED

    return run_async(go())


def cmd_export_members(args: argparse.Namespace) -> int:
    from services import export

    settings = settings_of(args)

    async def go() -> int:
        await _require_schema(settings)
        from storage.db import Database

        db = Database(settings.database.url)
        try:
            count = await export.export_members(
                db, args.unit, Path(args.output), include_removed=args.all
            )
        except export.UnknownUnit:
            raise CommandError(f"unknown unit code: {args.unit}") from None
        finally:
            await db.dispose()
        print(f"exported {count} members of {args.unit} to {args.output}")
        return EXIT_OK

    return run_async(go())


def cmd_cycle_open(args: argparse.Namespace) -> int:
    from services import cycles

    settings = settings_of(args)

    async def go() -> int:
        await _require_schema(settings)
        from storage.db import Database

        db = Database(settings.database.url)
        try:
            cycle, created = await cycles.open_cycle(
                db, args.year, args.cutoff, args.deadline, grace_days=args.grace_days
            )
        except cycles.CycleError as exc:
            raise CommandError(str(exc)) from None
        finally:
            await db.dispose()
        verb = "opened" if created else "updated"
        print(
            f"{verb} the {cycle.year} review: cut-off {cycle.cutoff_date}, "
            f"deadline {cycle.deadline}"
        )
        return EXIT_OK

    return run_async(go())


def cmd_demo_data(args: argparse.Namespace) -> int:
    from services import demo_data

    out = Path(args.output)
    paths = demo_data.write_demo_files(
        out, members=args.members, seed=args.seed, fmt=args.format, progress=not args.quiet
    )
    for p in paths.values():
        print(p)
    return EXIT_OK


# --- the parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unioncard",
        description="工会服务卡年审机器人: the union service-card annual-review bot.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="the TOML config file (default: $UNIONCARD_CONFIG; see config.example.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("serve", help="run the HTTP app (callbacks, H5 upload page)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the outbox sender, background jobs and reminders")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo",
        help="run everything in one process with demo data and the WeCom simulator",
    )
    p.add_argument("--host", default=None, help="listen address (default: from the config)")
    p.add_argument("--port", type=int, default=None, help="listen port (default: from config)")
    p.add_argument("--members", type=_positive, default=None, help="demo members to load")
    p.add_argument("--fresh", action="store_true", help="start from an empty demo database")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("db", help="database schema commands")
    dbsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    q = dbsub.add_parser("upgrade", help="bring the database schema up to date (alembic)")
    q.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    q.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("import", help="import units, operators or members from a file")
    isub = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    headers = {
        "units": "单位编码, 单位名称, 上级单位编码, 单位类型, 登记日期, 职工总数, 会员数, 女职工数, "
        "劳务派遣工数, 农民工数, 工会状态, 社团法人证号, 届满日期, 联系人, 联系人手机",
        "operators": "单位编码, 平台, 用户ID, 姓名, 角色",
        "members": "单位编码, 身份证号码, 姓名, 工会卡号, 办卡日期, 备注",
    }
    for kind, what in (
        ("units", "the union tree (upsert by 单位编码)"),
        ("operators", "contacts and approvers (upsert by unit, platform, user id, role)"),
        ("members", "card-holding members (upsert by 身份证号码)"),
    ):
        q = isub.add_parser(
            kind,
            help=f"import {what}",
            description=f"Import {what} from .xlsx, .xls or .csv. First row: {headers[kind]}.",
        )
        q.add_argument("file", metavar="FILE", help=".xlsx, .xls or .csv")
        q.add_argument("--dry-run", action="store_true", help="check only, write nothing")
        q.add_argument(
            "--skip-errors",
            action="store_true",
            help="import the good rows even if some rows are wrong",
        )
        q.add_argument("--errors", metavar="XLSX", help="write the wrong rows to this .xlsx")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        q.set_defaults(func=cmd_import)

    p = sub.add_parser("cycle", help="review cycles")
    csub = p.add_subparsers(dest="cycle_command", metavar="SUBCOMMAND", required=True)
    q = csub.add_parser("open", help="open (or change) the review of a year")
    q.add_argument("--year", type=int, required=True)
    q.add_argument("--cutoff", type=_date, required=True, help="cards issued before this (R1)")
    q.add_argument("--deadline", type=_date, required=True, help="last day of the review")
    q.add_argument("--grace-days", type=_positive, default=0, help="days allowed after it")
    q.set_defaults(func=cmd_cycle_open)

    p = sub.add_parser("export", help="export data to a file")
    esub = p.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    q = esub.add_parser("members", help="the members of one unit to .xlsx or .csv")
    q.add_argument("--unit", required=True, metavar="CODE", help="the unit code (单位编码)")
    q.add_argument("-o", "--output", required=True, metavar="FILE", help=".xlsx or .csv")
    q.add_argument("--all", action="store_true", help="include removed members")
    q.set_defaults(func=cmd_export_members)

    p = sub.add_parser(
        "demo-data",
        help="write import files for a realistic demo dataset",
        description="Write units, operators and members import files for a realistic dataset "
        "(常州市总工会 and its district federations, industry, grassroots and joint unions).",
    )
    p.add_argument("-o", "--output", default="var/demo-data", metavar="DIR")
    p.add_argument("--members", type=_demo_members, default=2000, help="members (up to 1,000,000)")
    p.add_argument("--seed", type=int, default=2016)
    p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo_data)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"unioncard: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a crash: its text may quote data (openpyxl quotes the cell)
        import traceback

        from services.validators import mask_sensitive

        text = "".join(traceback.format_exception(exc))
        # services.redact.scrub (no secret, full ID number or mobile) + control characters shown
        print(mask_sensitive(text).rstrip(), file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
