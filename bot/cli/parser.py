"""The parser and :func:`main` of the ``unioncard`` command line.

Every command takes the global ``--config PATH`` (else ``$UNIONCARD_CONFIG``); a bad or missing
config value prints one line and exits with code 2; a :class:`~bot.cli.common.CommandError`
prints one line; any other crash prints its traceback scrubbed of secrets, ID numbers and
mobiles. Each command group is a module of this package with a ``register(subparsers)``
(:data:`REGISTER`, in the order ``--help`` lists them); what they share is in ``common``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bot.cli import approvals, cycle, db, import_export, reminders, serve, units
from bot.cli.common import EXIT_FAILED, EXIT_USAGE, CommandError
from storage.settings import ConfigError

REGISTER: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    serve.register,  # serve, worker, demo
    db.register,
    import_export.register_import,
    cycle.register,
    import_export.register_export,  # export, demo-data
    reminders.register,  # remind, report
    approvals.register,
    units.register,  # issue 14: the tree
)


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
    for register in REGISTER:
        register(sub)
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
