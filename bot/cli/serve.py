"""``unioncard serve``, ``worker`` and ``demo``: the long-running processes.

``serve`` runs the HTTP app (``bot.app.run_serve``), ``worker`` the outbox sender, jobs and
reminders (``bot.worker.run_worker``), both after the schema check and with a usable secret key;
``demo`` runs everything in one process with demo data and the WeCom simulator (``bot.demo``).
"""

from __future__ import annotations

import argparse
import asyncio

from bot.cli.common import EXIT_OK, lazy, non_negative, require_schema, run_async, settings_of
from storage.settings import Settings, require_secret_key


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--members", type=non_negative, default=None, help="demo members to load")
    p.add_argument("--fresh", action="store_true", help="start from an empty demo database")
    p.set_defaults(func=cmd_demo)


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
    run_demo = lazy("bot.demo", "run_demo", "demo")
    result = run_demo(settings, args)
    if asyncio.iscoroutine(result):
        return run_async(result)
    return EXIT_OK if result is None else int(result)


async def _with_schema(settings: Settings, module: str, attr: str, what: str) -> int | None:
    """Check the schema, then run ``module.attr(settings)`` (async or plain)."""
    await require_schema(settings)
    result = lazy(module, attr, what)(settings)
    if asyncio.iscoroutine(result):
        result = await result
    return result if isinstance(result, int) else None
