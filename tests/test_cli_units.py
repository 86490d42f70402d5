"""``unioncard units``: the tree operations for the city federation's staff (issue 14 point 6).

Each command through :func:`bot.cli.main` on a SQLite file: the preview (``--dry-run``), the
confirmation (``--yes``, a terminal, no terminal), every refusal as one line with exit code 1,
and the outcome in the database (units, members, operators, audit rows, re-routed reviews and
the cards in the outbox).
"""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from approval_seed import seed_tree
from factories import build_tree
from sqlalchemy import func, select
from tree_seed import seed

from bot.cli import main
from services import approvals
from services.demo_data import load_demo
from services.demo_tree_cases import DUP_DATA, DUP_EMPTY
from services.messages import Card, from_payload
from storage.db import Database
from storage.models import (
    ApprovalStep,
    AuditLog,
    Decision,
    Member,
    MemberStatus,
    Operator,
    Outbox,
    Review,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
)
from storage.settings import load_settings, random_secret_key

NAME = "常州市新建有限公司工会委员会"
NOW = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for key in list(os.environ):
        if key.startswith("UNIONCARD"):
            monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("UNIONCARD__DATABASE__URL", url)
    monkeypatch.setenv("UNIONCARD__SERVER__SECRET_KEY", random_secret_key())
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal unless a test says so
    assert main(["db", "upgrade"]) == 0
    return load_settings().database.url


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def on_db(url: str, fn):
    async def go():
        db = Database(url)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def tree(url: str):
    return on_db(url, seed)


def one(url: str, q):
    async def get(db):
        async with db.session() as s:
            return await s.scalar(q)

    return on_db(url, get)


def refused(capsys, argv: list[str], says: str) -> None:
    """The command exits 1 with exactly one line that says why."""
    capsys.readouterr()
    assert main(argv) == 1, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err


@pytest.mark.parametrize("cmd", ["create", "duplicates", "merge", "split", "move"])
def test_every_command_has_help_with_an_example(cmd, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["units", cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"unioncard units {cmd} " in out


def test_create_preview_confirm_and_refusals(cli_env, capsys, monkeypatch) -> None:
    t = tree(cli_env)
    base = ["units", "create", "--parent", "DA", "--code", "U9", "--name", NAME]
    args = [*base, "--kind", "基层工会", "--status", "已建立工会", "--operator", "wecom:zs:张三"]

    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "将新增下级单位" in out and NAME in out and "张三" in out and "预览" in out
    assert one(cli_env, select(Union.id).where(Union.code == "U9")) is None

    refused(capsys, args, "--yes")  # no terminal, no --yes
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert main(args) == 1
    assert "已取消" in capsys.readouterr().out
    assert one(cli_env, select(Union.id).where(Union.code == "U9")) is None

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(args) == 0
    assert "已新增" in capsys.readouterr().out
    u = one(cli_env, select(Union).where(Union.code == "U9"))
    assert u.parent_id == t.uid("DA") and u.kind == UnionKind.grassroots
    op = one(cli_env, select(Operator).where(Operator.union_id == u.id))
    assert (op.platform, op.user_id, op.name, op.role) == ("wecom", "zs", "张三", Role.contact)
    row = one(cli_env, select(AuditLog).where(AuditLog.action == "unit.created"))
    assert row.actor.startswith("cli:") and row.detail["after"]["code"] == "U9"

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    refused(capsys, [*args, "--yes"], "已被使用")
    refused(capsys, [*base[:4], "--code", "U8", "--name", NAME, "--kind", "公司", "-y"], "单位类型")
    refused(
        capsys,
        [*base[:4], "--code", "U8", "--name", NAME, "--kind", "基层工会", "--status", "有", "-y"],
        "工会状态",
    )
    refused(
        capsys, [*base[:4], "--code", "U8", "--name", "新建公司", "--kind", "基层工会", "-y"], "D1"
    )
    refused(
        capsys,
        ["units", "create", "--parent", "U1", "--code", "U8", "--name", NAME, "--kind", "基层工会"],
        "基层工会",
    )
    refused(
        capsys,
        [*base[:4], "--code", "U8", "--name", NAME, "--kind", "基层工会", "--operator", "zs", "-y"],
        "平台:用户ID:姓名",
    )
    refused(
        capsys, ["units", "create", "--parent", "NOPE", "--code", "U8", "--name", NAME,
                 "--kind", "基层工会", "-y"], "没有编码为 NOPE",
    )  # fmt: skip
    # without an operator: created, and told it cannot take part yet
    assert main([*base[:4], "--code", "U7", "--name", "常州市七号有限公司工会委员会",
                 "--kind", "基层工会", "--status", "未建立工会", "-y"]) == 0  # fmt: skip
    assert "没有操作管理员" in capsys.readouterr().out


def test_duplicates_one_pair_a_line(cli_env, capsys) -> None:
    tree(cli_env)

    async def copies(db):
        async with build_tree(db) as t:
            await t.lookup("DA")
            await t.unit("U1X", "常州市一号（有限公司） 工会委员会", parent="DA")
            await t.unit("U2X", "常州市另一有限公司工会委员会", parent="DA",
                         contact_mobile="13800000001")  # fmt: skip

    on_db(cli_env, copies)
    capsys.readouterr()
    assert main(["units", "duplicates", "--unit", "CITY"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all("U1" in line for line in lines)
    assert any("U1X" in line and "删除空的重复单位 U1X" in line for line in lines)
    assert any("U2X" in line and "联系人手机相同" in line for line in lines)
    assert main(["units", "duplicates", "--unit", "DB"]) == 0
    assert "没有发现" in capsys.readouterr().out
    refused(capsys, ["units", "duplicates", "--unit", "NOPE"], "没有编码为 NOPE")


def test_duplicates_on_the_demo_data_list_the_planted_cases(cli_env, tmp_path, capsys) -> None:
    """Done-when of issue 14: the demo data's planted duplicates, from the root down."""
    on_db(cli_env, lambda db: load_demo(db, members=200, work_dir=tmp_path))
    root = one(cli_env, select(Union.code).where(Union.parent_id.is_(None)))
    capsys.readouterr()
    assert main(["units", "duplicates", "--unit", root]) == 0
    lines = capsys.readouterr().out.splitlines()
    empty = [line for line in lines if DUP_EMPTY in line]
    data = [line for line in lines if DUP_DATA in line]
    assert len(empty) == 1 and f"删除空的重复单位 {DUP_EMPTY}" in empty[0]
    assert len(data) == 1 and "联系人手机相同" in data[0] and f"合并 {DUP_DATA}" in data[0]


def test_merge_dry_run_yes_and_refusals(cli_env, capsys) -> None:
    t = tree(cli_env)
    refused(capsys, ["units", "merge", "--keep", "U1", "--drop", "U1", "-y"], "同一个")
    refused(capsys, ["units", "merge", "--keep", "U1", "--drop", "NOPE", "-y"], "没有编码为")
    refused(capsys, ["units", "merge", "--keep", "U1", "--drop", "DA", "-y"], "下级单位")
    refused(capsys, ["units", "merge", "--keep", "U1", "--drop", "U2"], "--yes")

    assert main(["units", "merge", "--keep", "U1", "--drop", "U2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "合并到" in out and "转入会员：2 人" in out
    assert one(cli_env, select(Union.id).where(Union.code == "U2")) is not None

    async def draft(db):  # a review in progress of U2 this year
        async with build_tree(db, unions=t.unions) as b:
            await b.review("U2", load_settings().review.year)

    on_db(cli_env, draft)
    refused(capsys, ["units", "merge", "--keep", "U1", "--drop", "U2", "-y"], "年审正在进行")

    async def drop_review(db):
        async with db.transaction() as s:
            r = await s.scalar(select(Review).where(Review.union_id == t.uid("U2")))
            await s.delete(r)

    on_db(cli_env, drop_review)
    assert main(["units", "merge", "--keep", "U1", "--drop", "U2", "--yes"]) == 0
    assert "已把" in capsys.readouterr().out
    assert one(cli_env, select(Union.id).where(Union.code == "U2")) is None
    n = one(cli_env, select(func.count()).select_from(Member).where(Member.union_id == t.uid("U1")))
    assert n == 5
    assert one(cli_env, select(AuditLog.actor).where(AuditLog.action == "unit.merged"))


def test_split_and_refusals(cli_env, capsys) -> None:
    t = tree(cli_env)
    new = "常州甲有限公司工会委员会"
    args = ["units", "split", "--from", "J", "--employer", "甲公司", "--code", "JA", "--name", new]
    refused(capsys, [*args[:3], "U1", *args[4:], "-y"], "不是联合工会")
    refused(capsys, [*args[:5], "丙公司", *args[6:], "-y"], "没有备注为")
    refused(capsys, [*args[:-1], "甲公司", "-y"], "D1")
    refused(capsys, [*args[:7], "U1", *args[8:], "-y"], "已被使用")
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "拆分出独立基层工会" in out and out.count("甲公司）") == 3
    assert main([*args, "--operator", "wecom:jia:甲联系", "-y"]) == 0
    assert "转入会员 3 人" in capsys.readouterr().out
    ja = one(cli_env, select(Union).where(Union.code == "JA"))
    assert ja.parent_id == t.uid("DA") and ja.members_count == 3
    assert one(cli_env, select(Union.members_count).where(Union.code == "J")) == 2
    moved = one(
        cli_env,
        select(func.count())
        .select_from(Member)
        .where(Member.union_id == ja.id, Member.status == MemberStatus.active),
    )
    assert moved == 3
    assert one(cli_env, select(Operator.user_id).where(Operator.union_id == ja.id)) == "jia"


def test_move_across_federations_at_once_and_refusals(cli_env, capsys) -> None:
    t = tree(cli_env)
    refused(capsys, ["units", "move", "--unit", "DA", "--to", "U2", "-y"], "不能作为上级")
    refused(capsys, ["units", "move", "--unit", "DA", "--to", "J", "-y"], "本身或其下级")
    refused(capsys, ["units", "move", "--unit", "CITY", "--to", "DB", "-y"], "最上级")
    refused(capsys, ["units", "move", "--unit", "U1", "--to", "DA", "-y"], "已经在")
    refused(capsys, ["units", "move", "--unit", "U1", "--to", "DB"], "--yes")
    assert main(["units", "move", "--unit", "U1", "--to", "DB", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "调整到" in out and "调入申请" not in out  # staff: at once, no request
    assert one(cli_env, select(Union.parent_id).where(Union.code == "U1")) == t.uid("DA")
    assert main(["units", "move", "--unit", "U1", "--to", "DB", "-y"]) == 0
    assert one(cli_env, select(Union.parent_id).where(Union.code == "U1")) == t.uid("DB")
    assert one(cli_env, select(AuditLog.actor).where(AuditLog.action == "unit.moved"))


def cards_to(url: str, recipient: str) -> list:
    async def get(db):
        async with db.session() as s:
            rows = await s.scalars(
                select(Outbox).where(Outbox.recipient == recipient).order_by(Outbox.id)
            )
            return [from_payload(r.kind, r.payload) for r in rows]

    return on_db(url, get)


def test_move_reroutes_a_pending_review_and_queues_the_cards(cli_env, capsys) -> None:
    settings = load_settings()

    async def prepare(db):
        t = await seed_tree(db)
        await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id, now=NOW)
        return t

    t = on_db(cli_env, prepare)
    assert not [c for c in cards_to(cli_env, "a_other") if isinstance(c, Card)]
    assert main(["units", "move", "--unit", "U", "--to", "OTHER", "--dry-run"]) == 0
    assert "1 个待审核的年审将改由新的上级工会审核" in capsys.readouterr().out
    assert main(["units", "move", "--unit", "U", "--to", "OTHER", "-y"]) == 0
    assert "1 个待审核的年审已改由新的上级工会审核" in capsys.readouterr().out
    review = one(cli_env, select(Review).where(Review.id == t.review.id))
    assert review.chain == [t.uid("OTHER"), t.uid("CITY")] and review.round == 2
    assert [c for c in cards_to(cli_env, "a_other") if isinstance(c, Card)]


def test_merging_a_superior_unit_reroutes_a_subunits_pending_review(cli_env, capsys) -> None:
    """Point 4: the street union U's review waits at is merged into its copy; the review
    goes to the kept copy's chain, the old step is withdrawn and new cards are queued."""
    settings = load_settings()

    async def prepare(db):
        t = await seed_tree(db, levels=3)
        async with build_tree(db, unions=t.unions) as b:
            await b.union("STREET2", UnionKind.industry_union, "天宁区青龙街道总工会（新）", "DIST")
            b.approver("a_s2", "STREET2", "审核二")
        await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id, now=NOW)
        return t

    t = on_db(cli_env, prepare)
    street = t.uid("STREET")
    review = one(cli_env, select(Review).where(Review.id == t.review.id))
    assert review.status == ReviewStatus.submitted and review.chain[0] == street
    assert [c for c in cards_to(cli_env, "a_street") if isinstance(c, Card)]
    assert not cards_to(cli_env, "a_s2")

    assert main(["units", "merge", "--keep", "STREET2", "--drop", "STREET", "--dry-run"]) == 0
    assert "转入下级单位：1 个" in capsys.readouterr().out
    assert main(["units", "merge", "--keep", "STREET2", "--drop", "STREET", "-y"]) == 0
    kept = one(cli_env, select(Union.id).where(Union.code == "STREET2"))
    assert one(cli_env, select(Union.parent_id).where(Union.code == "U")) == kept
    review = one(cli_env, select(Review).where(Review.id == t.review.id))
    assert review.status == ReviewStatus.submitted
    assert review.chain == [kept, t.uid("DIST"), t.uid("CITY")] and review.round == 2
    old = one(
        cli_env,
        select(ApprovalStep).where(ApprovalStep.review_id == review.id, ApprovalStep.round == 1),
    )
    assert old.decision == Decision.withdrawn
    assert [c for c in cards_to(cli_env, "a_s2") if isinstance(c, Card)]
