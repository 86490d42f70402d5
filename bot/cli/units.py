"""``unioncard units``: keep the tree right, for the city federation's staff (issue 14 point 6).

- ``create``: a subordinate unit with its operator (S2);
- ``duplicates``: candidate duplicate pairs in a subtree, one a line (S3);
- ``merge``: merge a duplicate into the kept unit, or delete an empty copy (S3);
- ``split``: an independent grassroots union out of a joint union for one employer (S4);
- ``move``: a unit with its whole subtree under another parent (S5); pending reviews are
  re-routed to their new chain (the outbox gets the cards).

Staff act anywhere in the tree (``Actor.cli``), so a move across federations happens at once.
Every changing command prints the preview; ``--dry-run`` stops there; otherwise it asks for
confirmation on a terminal unless given ``--yes`` (no terminal and no ``--yes``: refused). A
refusal prints one line (the service's Chinese reason) and exits with code 1.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bot.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    queueing_db,
    require_schema,
    run_async,
    settings_of,
)

KINDS = "基层工会、联合工会、区县总工会、产业工会"
STATUSES = "已建立工会、建立工会联合会、未建立工会"
CONFIRM = "确认执行以上操作？输入 y 确认："
CANCELLED = "已取消，未做任何更改"
NO_TERMINAL = "没有终端可以确认：请在终端运行，或加 --yes 直接执行（可先用 --dry-run 预览）"
DRY_RUN = "（预览，未做任何更改）"

EXAMPLES = {
    "create": "unioncard units create --parent 320402 --code 320402-0815 "
    "--name 常州市XX有限公司工会委员会 --kind 基层工会 --status 已建立工会 "
    "--operator wecom:zhangsan:张三",
    "duplicates": "unioncard units duplicates --unit 320400",
    "merge": "unioncard units merge --keep 320402-0815 --drop 320402-0816 --dry-run",
    "split": "unioncard units split --from 320402-L01 --employer 常州XX科技有限公司 "
    "--code 320402-0901 --name 常州XX科技有限公司工会委员会 --operator wecom:lisi:李四",
    "move": "unioncard units move --unit 320402-0815 --to 320404",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "units",
        help="the union tree: create, duplicates, merge, split, move",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    usub = p.add_subparsers(dest="units_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int], changes: bool):
        q = usub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if changes:
            q.add_argument("--dry-run", action="store_true", help="print the preview only")
            q.add_argument("-y", "--yes", action="store_true", help="do it without asking")
        q.set_defaults(func=func)
        return q

    q = add("create", "create a subordinate unit with its operator (S2)", cmd_create, True)
    q.add_argument("--parent", required=True, metavar="CODE", help="the superior unit's code")
    q.add_argument("--code", required=True, metavar="CODE", help="the new unit's code")
    q.add_argument("--name", required=True, metavar="NAME", help="full name as on the seal (D1)")
    q.add_argument("--kind", required=True, metavar="KIND", help=KINDS)
    q.add_argument("--status", metavar="STATUS", help=STATUSES)
    q.add_argument("--operator", metavar="PLATFORM:USERID:NAME", help="its contact")

    q = add("duplicates", "list candidate duplicate pairs in a subtree (S3)", cmd_duplicates, False)
    q.add_argument("--unit", required=True, metavar="CODE", help="the subtree's top unit")

    q = add("merge", "merge a duplicate into the kept unit (S3)", cmd_merge, True)
    q.add_argument("--keep", required=True, metavar="CODE", help="the unit that stays")
    q.add_argument("--drop", required=True, metavar="CODE", help="the copy that goes")

    q = add("split", "split an independent union out of a joint union (S4)", cmd_split, True)
    q.add_argument("--from", dest="joint", required=True, metavar="CODE", help="the joint union")
    q.add_argument("--employer", required=True, metavar="NAME", help="as in members' 备注 (E4)")
    q.add_argument("--code", required=True, metavar="CODE", help="the new unit's code")
    q.add_argument("--name", required=True, metavar="NAME", help="full name as on the seal (D1)")
    q.add_argument("--operator", metavar="PLATFORM:USERID:NAME", help="its contact")

    q = add("move", "move a unit with its subtree under another parent (S5)", cmd_move, True)
    q.add_argument("--unit", required=True, metavar="CODE", help="the unit to move")
    q.add_argument("--to", required=True, metavar="CODE", help="its new superior unit")


def _actor():
    from services.tree.common import Actor

    try:
        who = getpass.getuser()
    except Exception:  # no user name in this environment
        who = "staff"
    return Actor.cli(who or "staff")


def _confirm(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise CommandError(NO_TERMINAL)
    print(CONFIRM, end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes", "是")


def _run(
    args: argparse.Namespace,
    preview: Callable[[Any, Any, Any], Awaitable[Any]] | None,
    apply: Callable[[Any, Any, Any], Awaitable[str]],
) -> int:
    """Schema check, preview (printed), confirmation, apply; a refusal is one line, exit 1."""
    from services.tree.common import TreeRefused

    settings = settings_of(args)

    async def go() -> int:
        await require_schema(settings)
        actor = _actor()
        try:
            async with queueing_db(settings) as db:
                if preview is not None:
                    p = await preview(db, settings, actor)
                    print(p.render())
                    if args.dry_run:
                        print(DRY_RUN)
                        return EXIT_OK
                    if not _confirm(args):
                        print(CANCELLED)
                        return EXIT_FAILED
                done = await apply(db, settings, actor)
                if done:
                    print(done)
                return EXIT_OK
        except TreeRefused as exc:
            raise CommandError(" ".join(exc.message.split())) from None

    return run_async(go())


def cmd_create(args: argparse.Namespace) -> int:
    from services.tree import create

    kw = dict(
        parent=args.parent,
        code=args.code,
        name=args.name,
        kind=args.kind,
        status=args.status,
        operator=args.operator,
    )

    async def apply(db, settings, actor) -> str:
        unit = await create.apply_create(db, actor, **kw)
        done = f"已新增 {unit.name}（{unit.code}）"
        return done if args.operator else done + "；它还没有操作管理员，不能参加年审"

    return _run(args, lambda db, settings, actor: create.preview_create(db, actor, **kw), apply)


def cmd_duplicates(args: argparse.Namespace) -> int:
    from services.tree.duplicates import find_duplicates

    async def apply(db, settings, actor) -> str:
        pairs = await find_duplicates(db, actor, args.unit)
        for pair in pairs:
            print(pair.render())
        print(f"共 {len(pairs)} 对疑似重复的单位", file=sys.stderr)
        return "" if pairs else "没有发现疑似重复的单位"

    args.dry_run = False
    return _run(args, None, apply)


def cmd_merge(args: argparse.Namespace) -> int:
    from services.tree import merge

    async def apply(db, settings, actor) -> str:
        p = await merge.apply_merge(db, settings, actor, keep=args.keep, drop=args.drop)
        if p.delete_only:
            return f"已删除重复单位 {p.drop_name}（{p.drop_code}）"
        return f"已把 {p.drop_name}（{p.drop_code}）合并到 {p.keep_name}（{p.keep_code}）"

    return _run(
        args,
        lambda db, settings, actor: merge.preview_merge(
            db, settings, actor, keep=args.keep, drop=args.drop
        ),
        apply,
    )


def cmd_split(args: argparse.Namespace) -> int:
    from services.tree import split

    kw = dict(
        joint=args.joint,
        employer=args.employer,
        code=args.code,
        name=args.name,
        operator=args.operator,
    )

    async def apply(db, settings, actor) -> str:
        unit = await split.apply_split(db, settings, actor, **kw)
        return f"已拆分出 {unit.name}（{unit.code}），转入会员 {unit.members_count} 人"

    return _run(
        args, lambda db, settings, actor: split.preview_split(db, settings, actor, **kw), apply
    )


def cmd_move(args: argparse.Namespace) -> int:
    from services.tree import move

    async def apply(db, settings, actor) -> str:
        r = await move.apply_move(db, settings, actor, unit=args.unit, to=args.to)
        if not r.moved:  # staff act anywhere; kept for a narrower actor
            return f"已向 {r.preview.to_name} 发出调入申请（编号 {r.request_id}）"
        text = f"已把 {r.preview.name}（{r.preview.code}）调整到 {r.preview.to_name} 下"
        if r.rerouted:
            text += f"；{len(r.rerouted)} 个待审核的年审已改由新的上级工会审核"
        return text

    return _run(
        args,
        lambda db, settings, actor: move.preview_move(db, actor, unit=args.unit, to=args.to),
        apply,
    )
