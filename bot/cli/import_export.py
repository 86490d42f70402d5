"""``unioncard import``, ``export`` and ``demo-data``: data in and out as files.

- ``import units|operators|members FILE`` (.xlsx, .xls, .csv; ``--dry-run``, ``--skip-errors``,
  ``--errors XLSX``); after units, reviews of moved units go to their new chain; after
  operators, levels that waited for an approver get their cards;
- ``export members --unit CODE -o FILE``;
- ``demo-data``: import files for a realistic dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    require_schema,
    run_async,
    settings_of,
)

HEADERS = {
    "units": "单位编码, 单位名称, 上级单位编码, 单位类型, 登记日期, 职工总数, 会员数, 女职工数, "
    "劳务派遣工数, 农民工数, 工会状态, 社团法人证号, 届满日期, 联系人, 联系人手机",
    "operators": "单位编码, 平台, 用户ID, 姓名, 角色",
    "members": "单位编码, 身份证号码, 姓名, 工会卡号, 办卡日期, 备注",
}


def register_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import units, operators or members from a file")
    isub = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, what in (
        ("units", "the union tree (upsert by 单位编码)"),
        ("operators", "contacts and approvers (upsert by unit, platform, user id, role)"),
        ("members", "card-holding members (upsert by 身份证号码)"),
    ):
        q = isub.add_parser(
            kind,
            help=f"import {what}",
            description=f"Import {what} from .xlsx, .xls or .csv. First row: {HEADERS[kind]}.",
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


def register_export(sub: argparse._SubParsersAction) -> None:
    """``export`` and ``demo-data`` (after ``cycle`` in the help, as they always were)."""
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
    p.add_argument("--members", type=demo_members, default=2000, help="members (up to 1,000,000)")
    p.add_argument("--seed", type=int, default=2016)
    p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_demo_data)


def demo_members(value: str) -> int:
    """An argparse type: a member count up to a million (``2_000`` and ``2,000`` accepted)."""
    n = int(value.replace("_", "").replace(",", ""))
    if not 0 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError("must be between 0 and 1,000,000")
    return n


def cmd_import(args: argparse.Namespace) -> int:
    from services import imports

    settings = settings_of(args)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"file not found: {path}", EXIT_USAGE)

    async def go() -> int:
        await require_schema(settings)
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
        await require_schema(settings)
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


def cmd_demo_data(args: argparse.Namespace) -> int:
    from services import demo_data

    out = Path(args.output)
    paths = demo_data.write_demo_files(
        out, members=args.members, seed=args.seed, fmt=args.format, progress=not args.quiet
    )
    for p in paths.values():
        print(p)
    return EXIT_OK
