"""The tree operations tried as a careless typist and a racer (issue 14, CHECKLIST): unit codes
typed with spaces, full-width characters or zero-width spaces in the CLI; 补录 with an ID number
with a lowercase x or spaces; a move into its own subtree; a merge and a split of the same joint
union at once."""

from __future__ import annotations

import asyncio

import pytest
from approval_seed import id_number
from sqlalchemy import func, select
from test_cli_units import NAME, cli_env, one, refused, tree  # noqa: F401 (fixture)
from test_transfer import chat, router  # noqa: F401 (fixture)
from tree_seed import seed

from bot.cli import main
from services.tree.common import Actor, TreeRefused
from services.tree.merge import apply_merge
from services.tree.split import apply_split
from storage.models import Member, MemberStatus, TransferRequest, Union


def test_cli_codes_typed_with_spaces_and_full_width(cli_env, capsys) -> None:  # noqa: F811
    t = tree(cli_env)
    # full-width letters/digits, a space inside, a zero-width space: the same codes
    assert main(["units", "move", "--unit", "Ｕ１", "--to", " D B\u200b", "-y"]) == 0
    assert one(cli_env, select(Union.parent_id).where(Union.code == "U1")) == t.uid("DB")
    argv = ["units", "create", "--parent", "ＤＡ", "--code", "ＮＥＷ１ ", "--name", NAME]
    assert main([*argv, "--kind", "基层工会", "-y"]) == 0
    assert one(cli_env, select(Union.parent_id).where(Union.code == "NEW1")) == t.uid("DA")
    # the code taken is recognised in any form; a control character is never stored
    refused(capsys, [*argv, "--kind", "基层工会", "-y"], "已被使用")
    refused(
        capsys, ["units", "move", "--unit", "Z\x07\u202eZ", "--to", "DB", "-y"], "没有编码为 ZZ "
    )
    refused(capsys, ["units", "move", "--unit", "DA", "--to", "Ｊ", "-y"], "本身或其下级")


def _with_x() -> str:
    return next(id_number(n) for n in range(900, 1100) if id_number(n).endswith("X"))


async def test_transfer_in_id_with_lowercase_x_and_spaces(db, router) -> None:  # noqa: F811
    t = await seed(db)
    idn = _with_x()
    typed = f" {idn[:6]} {idn[6:14]} {idn[14:].lower()} "
    reply = await chat(router, "c_u1", "补录", typed, "王 新人", "无")
    assert "确认" in reply, reply
    assert "已登记" in await chat(router, "c_u1", "确认")
    async with db.session() as s:
        m = await s.scalar(select(Member).where(Member.id_number == idn))
        assert m is not None and m.union_id == t.uid("U1") and m.name == "王新人"
    # a member of another unit, typed with spaces and lowercase: a transfer of that member
    v = t.members["V1"][0]
    typed = f"{v.id_number[:9]} {v.id_number[9:].lower()}"
    await chat(router, "c_u1", "补录", typed, v.name, "无")
    assert "转出申请" in await chat(router, "c_u1", "确认")
    async with db.session() as s:
        assert await s.scalar(select(TransferRequest.member_id)) == v.id
        n = await s.scalar(
            select(func.count()).select_from(Member).where(Member.status == MemberStatus.active)
        )
        assert n == sum(len(x) for x in t.members.values()) + 1


@pytest.mark.parametrize("attempt", range(10))
async def test_merge_and_split_of_the_same_joint_union_at_once(any_db, settings, attempt) -> None:
    """Merge J into U2 and split 甲公司 out of J at the same instant: one of them sees J as it
    was; the members are never lost or counted twice."""
    db = any_db
    t = await seed(db)
    staff = Actor.cli()
    merge = apply_merge(db, settings, staff, keep="U2", drop="J")
    split = apply_split(
        db, settings, staff, joint="J", employer="甲公司", code="JIA", name="常州甲公司工会委员会"
    )  # fmt: skip
    got = await asyncio.gather(merge, split, return_exceptions=True)
    for g in got:
        assert not isinstance(g, Exception) or isinstance(g, TreeRefused), repr(g)
    async with db.session() as s:
        rows = (await s.execute(select(Member.union_id, Member.status))).all()
        units = {u.code: u for u in await s.scalars(select(Union))}
    assert len(rows) == sum(len(x) for x in t.members.values())
    assert all(st == MemberStatus.active for _, st in rows)
    homes = {u for u, _ in rows}
    assert "J" not in units or units["J"].id in homes or not isinstance(got[0], Exception)
    if "J" not in units:  # merged: none of J's members is left without a unit
        assert all(u in {x.id for x in units.values()} for u in homes)
    if "JIA" in units:
        assert units["JIA"].parent_id == t.uid("DA")
