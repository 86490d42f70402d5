"""``unioncard cycle open``: open (or change) the review of a year."""

from __future__ import annotations

import argparse

from bot.cli.common import (
    EXIT_OK,
    CommandError,
    date_arg,
    non_negative,
    require_schema,
    run_async,
    settings_of,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cycle", help="review cycles")
    csub = p.add_subparsers(dest="cycle_command", metavar="SUBCOMMAND", required=True)
    q = csub.add_parser("open", help="open (or change) the review of a year")
    q.add_argument("--year", type=int, required=True)
    q.add_argument("--cutoff", type=date_arg, required=True, help="cards issued before this (R1)")
    q.add_argument("--deadline", type=date_arg, required=True, help="last day of the review")
    q.add_argument("--grace-days", type=non_negative, default=0, help="days allowed after it")
    q.set_defaults(func=cmd_cycle_open)


def cmd_cycle_open(args: argparse.Namespace) -> int:
    from services import cycles

    settings = settings_of(args)

    async def go() -> int:
        await require_schema(settings)
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
