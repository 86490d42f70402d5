"""``unioncard serve``, ``worker`` and ``demo``: the long-running processes.

``serve`` runs the HTTP app (``bot.app.run_serve``), ``worker`` the outbox sender, jobs and
reminders (``bot.worker.run_worker``), both after the schema check and with a usable secret key;
``demo`` runs everything in one process with demo data and the WeCom simulator (``bot.demo``).
``serve --processes N`` (or ``server.processes``) with N > 1 runs ``bot.supervisor``: N serve
children on one port, restarted when they die, drained on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from bot.cli.common import (
    EXIT_OK,
    lazy,
    non_negative,
    positive,
    require_schema,
    run_async,
    settings_of,
)
from storage.settings import Settings, require_secret_key


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP app (callbacks, H5 upload page)")
    p.add_argument(
        "--processes",
        type=positive,
        default=None,
        help="serve processes on the one port (default: server.processes from the config)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # bot.supervisor
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the outbox sender, background jobs and reminders")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo",
        help="run everything in one process with demo data and the WeCom simulator",
    )
    p.add_argument("--host", default=None, help="listen address (default: from the config)")
    p.add_argument("--port", type=int, default=None, help="listen port (default: from config)")
    p.add_argument("--members", type=non_negative, default=None, help="demo members to load")
    p.add_argument("--fresh", action="store_true", help="start from an empty demo database")
    p.set_defaults(func=cmd_demo)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    require_secret_key(settings)
    if args.child:  # one of the supervisor's children: its port is shared
        return run_async(_with_schema(settings, "bot.app", "run_serve", "serve", reuse_port=True))
    processes = args.processes or settings.server.processes
    if processes == 1:
        return run_async(_with_schema(settings, "bot.app", "run_serve", "serve"))
    run_async(require_schema(settings))  # once, before any child starts
    from bot.logs import setup_logging
    from bot.supervisor import Supervisor, child_command

    setup_logging(settings.log.level, debug_loggers=settings.log.debug_loggers)
    if settings.database.url.startswith("sqlite"):
        logging.getLogger("unioncard.supervisor").warning(
            "serve.sqlite_with_processes: SQLite is for one process; use PostgreSQL"
        )
    drain = settings.server.drain_timeout_seconds
    return Supervisor(child_command(args.config), processes, drain_timeout=drain).run()


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    require_secret_key(settings)
    return run_async(_with_schema(settings, "bot.worker", "run_worker", "worker"))


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    run_demo = lazy("bot.demo", "run_demo", "demo")
    result = run_demo(settings, args)
    if asyncio.iscoroutine(result):
        return run_async(result)
    return EXIT_OK if result is None else int(result)


async def _with_schema(
    settings: Settings, module: str, attr: str, what: str, **kwargs: Any
) -> int | None:
    """Check the schema, then run ``module.attr(settings, **kwargs)`` (async or plain)."""
    await require_schema(settings)
    result = lazy(module, attr, what)(settings, **kwargs)
    if asyncio.iscoroutine(result):
        result = await result
    return result if isinstance(result, int) else None
