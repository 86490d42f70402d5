"""``unioncard approvals resend``: send the waiting approval cards (issue 6).

A review whose current level had no approver waits visibly (the contact and the level above were
told). Once approvers are added (``unioncard import operators``), this sends the current step's
card to every active approver of that level who has none yet; it is safe to run any time.
"""

from __future__ import annotations

import argparse

from bot.cli.common import queueing_db, require_schema, run_async, settings_of


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("approvals", help="approval cards: resend the waiting ones")
    sub = p.add_subparsers(dest="approvals_command", metavar="WHAT", required=True)
    q = sub.add_parser(
        "resend",
        help="send the current level's card to approvers who have none yet",
        description=__doc__,
    )
    q.set_defaults(func=cmd_resend)


def cmd_resend(args: argparse.Namespace) -> int:
    from services.approvals import send_all_pending_cards

    settings = settings_of(args)

    async def go() -> int:
        await require_schema(settings)
        async with queueing_db(settings) as db:
            sent = await send_all_pending_cards(db, settings)
        total = sum(sent.values())
        for rid, n in sent.items():
            print(f"review {rid}: {n} card(s) queued")
        print(f"{total} card(s) queued for {len(sent)} review(s)")
        return 0

    return run_async(go())
