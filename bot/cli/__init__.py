"""The ``unioncard`` command line (``unioncard --help``; also ``python -m bot.cli``).

One module per command group, each with ``register(subparsers)``: ``serve`` (serve, worker,
demo), ``db`` (db upgrade), ``import_export`` (import, export, demo-data), ``cycle`` (cycle
open), ``reminders`` (remind, report progress), ``approvals`` (approvals resend). ``parser`` holds
the parser and :func:`main`; ``common`` what the commands share (exit codes, ``CommandError``,
``settings_of``, ``run_async``, ``require_schema``, argument types). A new group is a new module
here plus one line in ``parser.REGISTER``.
"""

from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from bot.cli.parser import build_parser, main

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "build_parser", "main"]
