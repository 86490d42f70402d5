"""What every ``unioncard`` subcommand shares: exit codes, errors, settings, the schema check.

A command's parser sets ``func`` (a callable taking the parsed ``argparse.Namespace`` and
returning an exit code). It raises :class:`CommandError` for a one-line failure, reads its
settings with :func:`settings_of`, runs its coroutine with :func:`run_async` and, if it uses the
database, first awaits :func:`require_schema` (which asks for ``unioncard db upgrade``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Any

from storage.settings import Settings, load_settings

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
        from storage import changes

        cached = load_settings(args.config)
        changes.register(cached.redis.url)  # operator/unit writes drop every process's cache
        remember_settings(cached)  # never logged, stored or printed from now on
        clock.configure(cached.reminders.timezone)
        args._settings = cached
    return cached


def run_async(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine; ``None`` means success."""
    result = asyncio.run(coro)
    return EXIT_OK if result is None else int(result)


def lazy(module: str, attr: str, what: str) -> Callable[..., Any]:
    """``module.attr``, imported now; a :class:`CommandError` if this build lacks it."""
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


async def require_schema(settings: Settings) -> None:
    """Stop with exit code 2 unless the database schema is current."""
    from storage.schema import SchemaBehind, ensure_current

    try:
        await ensure_current(settings.database.url)
    except SchemaBehind as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None


def date_arg(value: str) -> date:
    """An argparse type: a date (YYYY-MM-DD and the other forms ``parse_date`` takes)."""
    from services.validators import Invalid, parse_date

    try:
        return parse_date(value)
    except Invalid:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def non_negative(value: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n
