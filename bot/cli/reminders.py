"""``unioncard remind`` and ``unioncard report progress`` (issue 7).

- ``remind --dry-run`` lists who would get what for the current occasion, and why;
- ``remind --now`` queues the current occasion at once (people who already had it get nothing);
- ``report progress --unit CODE -o FILE.xlsx`` writes the subtree's progress, a sheet per status.

``--at`` sets the clock (ISO date-time, local time if it has no offset) for rehearsals.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.cli.common import CommandError, queueing_db, require_schema, run_async, settings_of
from storage.settings import Settings


def _at(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date-time: {value!r} (use 2026-12-24T09:00 or with +08:00)"
        ) from None
    return dt


def _clock(settings: Settings, at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(settings.reminders.timezone))
    return at.astimezone(UTC)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "remind",
        help="reminders before the deadline: list them (--dry-run) or send them now (--now)",
        description="Reminders of the current occasion (days before the deadline, see "
        "[reminders] in the config): contacts of units that have not submitted or were "
        "returned, and a digest to each approver with pending cards. Each person gets an "
        "occasion once, however often this runs.",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list who would get what and why")
    mode.add_argument("--now", action="store_true", help="queue the current occasion at once")
    p.add_argument("--at", type=_at, default=None, metavar="DATETIME", help="pretend it is then")
    p.add_argument("-v", "--verbose", action="store_true", help="print each message's text")
    p.set_defaults(func=cmd_remind)

    p = subparsers.add_parser("report", help="reports as .xlsx")
    rsub = p.add_subparsers(dest="report_command", metavar="WHAT", required=True)
    q = rsub.add_parser(
        "progress",
        help="the review progress of a union's subtree, one sheet per status",
    )
    q.add_argument("--unit", required=True, metavar="CODE", help="the union code (单位编码)")
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="the .xlsx to write")
    q.add_argument("--at", type=_at, default=None, metavar="DATETIME", help="pretend it is then")
    q.set_defaults(func=cmd_report_progress)


def cmd_remind(args: argparse.Namespace) -> int:
    from services.reminders import remind_now

    settings = settings_of(args)
    now = _clock(settings, args.at)

    async def go() -> int:
        await require_schema(settings)
        async with queueing_db(settings) as db:
            res = await remind_now(db, settings, now, dry_run=args.dry_run)
        if res.occasion is None:
            print(f"nothing to send: {res.skipped}")
            return 0
        occ = res.occasion
        local = occ.at.astimezone(ZoneInfo(settings.reminders.timezone))
        print(
            f"occasion {occ.key}: {occ.days_before} days before the deadline, "
            f"{local:%Y-%m-%d %H:%M} {settings.reminders.timezone}"
        )
        contacts = sum(1 for p in res.planned if p.kind == "contact")
        digests = len(res.planned) - contacts
        if args.dry_run:
            for p in res.planned:
                mark = "  (already queued)" if p.already_queued else ""
                print(f"{p.platform}:{p.user_id}\t{p.kind}\t{p.why}{mark}")
                if args.verbose:
                    print("    " + p.text.replace("\n", "\n    "))
            done = sum(1 for p in res.planned if p.already_queued)
            print(
                f"{len(res.planned)} recipients: {contacts} contacts, {digests} approver "
                f"digests; {done} already queued, {len(res.planned) - done} would be sent"
            )
        else:
            print(
                f"queued {res.queued} messages ({contacts} contacts, {digests} approver "
                f"digests planned; {len(res.planned) - res.queued} had it already)"
            )
            if res.queued and res.sends_at is not None:
                tz = settings.reminders.timezone
                out = res.sends_at.astimezone(ZoneInfo(tz))
                print(
                    f"it is within the quiet hours {settings.reminders.quiet_hours}: they go out "
                    f"at {out:%H:%M} ({out:%Y-%m-%d} {tz}), not before"
                )
        return 0

    return run_async(go())


def cmd_report_progress(args: argparse.Namespace) -> int:
    from services.progress import UnknownUnion
    from services.reports import write_progress_report
    from storage.db import Database

    settings = settings_of(args)
    now = _clock(settings, args.at)
    out = Path(args.output)
    if out.suffix.lower() != ".xlsx":
        raise CommandError("the report is an .xlsx file: give -o FILE.xlsx", 2)

    async def go() -> int:
        await require_schema(settings)
        db = Database(settings.database.url)
        try:
            progress = await write_progress_report(db, settings, args.unit, out, now)
        except UnknownUnion:
            raise CommandError(f"unknown unit code: {args.unit}") from None
        finally:
            await db.dispose()
        c = progress.counts
        print(
            f"{progress.union_name}: {progress.eligible} units — not started {c['not_started']}, "
            f"draft {c['draft']}, submitted {c['submitted']}, returned {c['returned']}, "
            f"completed {c['completed']}; written to {out}"
        )
        return 0

    return run_async(go())
