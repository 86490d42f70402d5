"""``unioncard db upgrade [REVISION]``: bring the database schema up to date (alembic)."""

from __future__ import annotations

import argparse

from bot.cli.common import EXIT_OK, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database schema commands")
    dbsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    q = dbsub.add_parser("upgrade", help="bring the database schema up to date (alembic)")
    q.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    q.set_defaults(func=cmd_db_upgrade)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.migrations import upgrade

    settings = settings_of(args)
    revision = upgrade(settings.database.url, args.revision)
    print(f"database schema is at {revision}")
    return EXIT_OK
