"""A file of a few thousand rows applied as marks (M2) on both databases: the bulk writes give
exactly the marks the rules say (each file replaces the earlier files' marks; list marks stay
unless the file names the member; a superseded file sent again becomes current), and the chat
says the same result text."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
from factories import build_tree, bulk_ids
from sqlalchemy import select

from dialogs.events import Event, EventKind
from dialogs.router import DialogRouter
from services import member_review as mr
from services.messages import Text
from services.uploads import Sheet
from storage.models import Member, Removal, RemovalReason, Upload

P = "wecom"
CONTACT = "c_bulk"
N = 3000
REASONS = list(RemovalReason)
WORDS = {
    RemovalReason.retired: "退休",
    RemovalReason.resigned: "离职",
    RemovalReason.deceased: "死亡",
}


async def _seed(db, members: int = N) -> tuple[int, list[str], dict[str, int]]:
    ids = list(bulk_ids(members))
    async with build_tree(db, platform=P) as t:
        await t.federation("CITY", "常州市总工会")
        await t.district("DIST", "新北区总工会", parent="CITY")
        await t.unit("U", "常州市测试机械有限公司工会委员会", parent="DIST")
        t.contact(CONTACT, "U", "李")
        await t.bulk_members("U", ids)
        review = await t.review("U", 2026, unit_confirmed=True, member_mode="file")
    async with db.session() as s:
        by_id = dict((await s.execute(select(Member.id_number, Member.id))).tuples().all())
    return review.id, ids, by_id


def _sheet(rows: list[tuple[str, RemovalReason]]) -> Sheet:
    n = len(rows)
    values = {"id": [r[0] for r in rows], "reason": [WORDS[r[1]] for r in rows]}
    return Sheet("xlsx", ["id", "reason"], 1, list(range(2, n + 2)), values, {"id": "s" * n})


async def _removals(db, review_id: int) -> dict[int, tuple[str, str]]:
    async with db.session() as s:
        rows = await s.execute(
            select(Removal.member_id, Removal.reason, Removal.source).where(
                Removal.review_id == review_id
            )
        )
        return {mid: (RemovalReason(r).value, src) for mid, r, src in rows}


def _model(
    before: dict[int, tuple[str, str]], wanted: dict[int, RemovalReason]
) -> tuple[dict[int, tuple[str, str]], int, int]:
    """The rule, written plainly: (marks after, new, replaced)."""
    after = {m: v for m, v in before.items() if v[1] != "file" or m in wanted}
    replaced = len(before) - len(after)
    new = sum(1 for m in wanted if m not in before)
    after.update({m: (r.value, "file") for m, r in wanted.items()})
    return after, new, replaced


async def _apply(db, rid: int, sha: str, rows: list[tuple[str, RemovalReason]], by_id):
    check = await mr.check_file(db, rid, _sheet(rows))
    assert not check.errors and check.matched == len(rows)
    up = await mr.record_upload(db, rid, sha * 64, f"{sha}.xlsx", 1, check=check)
    return up, {by_id[x]: r for x, r in rows}


async def test_bulk_marks_follow_the_rules(any_db):
    db = any_db
    rid, ids, by_id = await _seed(db)
    # list marks on the first 100 (M1)
    await mr.mark(db, rid, list(range(1, 101)), RemovalReason.deceased)
    before = await _removals(db, rid)
    assert len(before) == 100 and all(v == ("deceased", "list") for v in before.values())
    async with db.session() as s:
        first_at = await s.execute(select(Removal.created_at).where(Removal.review_id == rid))
        list_created = {c.replace(microsecond=0, tzinfo=None) for c in first_at.scalars()}

    # file A: members 50..2049 (names 50 list-marked members), reasons in turn
    rows_a = [(ids[i], REASONS[i % 3]) for i in range(50, 2050)]
    up_a, wanted_a = await _apply(db, rid, "a", rows_a, by_id)
    res = await mr.apply_upload(db, rid, up_a.id)
    expect, new, replaced = _model(before, wanted_a)
    assert await _removals(db, rid) == expect
    assert (res.marked, res.new, res.replaced, res.remarks) == (2000, new, replaced, 0)
    assert (res.new, res.replaced) == (1950, 0)
    async with db.session() as s:  # the new marks' times read back as the ORM wrote them
        times = (await s.execute(select(Removal.created_at))).scalars().all()
    assert all(isinstance(t, datetime) for t in times)
    assert max(times).replace(tzinfo=None) - min(times).replace(tzinfo=None) < timedelta(minutes=5)
    assert (await mr.apply_upload(db, rid, up_a.id)).already_applied

    # file B: 1000..2999, a third of the kept ones with another reason; A's 50..999 go
    before = await _removals(db, rid)
    rows_b = [(ids[i], REASONS[(i + (i % 2)) % 3]) for i in range(1000, 3000)]
    up_b, wanted_b = await _apply(db, rid, "b", rows_b, by_id)
    res = await mr.apply_upload(db, rid, up_b.id)
    expect, new, replaced = _model(before, wanted_b)
    assert await _removals(db, rid) == expect
    assert (res.marked, res.new, res.replaced) == (2000, new, replaced) == (2000, 950, 950)
    async with db.session() as s:
        statuses = dict((await s.execute(select(Upload.id, Upload.status))).tuples().all())
    assert statuses == {up_a.id: "superseded", up_b.id: "applied"}
    # the marks kept from before keep their time (only the reason and source change)
    async with db.session() as s:
        kept = (
            await s.execute(
                select(Removal.created_at).where(
                    Removal.review_id == rid, Removal.member_id == by_id[ids[0]]
                )
            )
        ).scalar_one()
    assert kept.replace(microsecond=0, tzinfo=None) in list_created

    # A sent again: it becomes current (from what was stored with it)
    before = await _removals(db, rid)
    res = await mr.apply_upload(db, rid, up_a.id)
    expect, new, replaced = _model(before, wanted_a)
    assert await _removals(db, rid) == expect
    assert (res.marked, res.new, res.replaced) == (2000, new, replaced)
    assert len(expect) == 2050  # the untouched list marks 0..49 and A's 2000


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("名单")
    ws.append(["身份证号码", "姓名", "不通过原因"])
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


async def _upload(router: DialogRouter, path: Path) -> str:
    reply = await router.handle(
        Event(
            platform=P,
            user_id=CONTACT,
            kind=EventKind.upload,
            upload_path=str(path),
            file_name=path.name,
        )
    )
    return "\n".join(m.text for m in reply.messages if isinstance(m, Text))


async def test_chat_result_text_of_a_large_file(any_db, redis, settings, tmp_path):
    rid, ids, _ = await _seed(any_db)
    await mr.mark(any_db, rid, [1, 2], RemovalReason.deceased)
    router = DialogRouter(settings, any_db, redis)
    for text in ("年审", "2"):  # the member review, by file
        await router.handle(Event(platform=P, user_id=CONTACT, kind=EventKind.text, text=text))
    words = ["退休", "离职", "死亡"]
    a = _xlsx(tmp_path / "名单.xlsx", [[x, f"会员{i}", words[i % 3]] for i, x in enumerate(ids)])
    text = await _upload(router, a)
    assert text.splitlines() == [
        f"【文件「名单.xlsx」】共 {N} 行，匹配本单位会员 {N} 人，有问题 0 行。",
        "其中：退休 1000 人，离职 1000 人，死亡 1000 人",
        "（其中 2 人此前已标记，以本文件为准。）",
        f"已导入：标记 {N} 人（新增 {N - 2} 人）。",
        "回复「完成」查看汇总并提交；也可以继续发送文件或回复「列表」查看。",
    ]
    assert len(await _removals(any_db, rid)) == N
    # a smaller second file: the rest are no longer marked
    b = _xlsx(tmp_path / "名单2.xlsx", [[x, f"会员{i}", "退休"] for i, x in enumerate(ids[:1000])])
    text = await _upload(router, b)
    assert text.splitlines()[-2:] == [
        f"已导入：标记 1000 人（新增 0 人）。之前文件中标记、本文件没有的 {N - 1000} 人已撤销标记。",
        "回复「完成」查看汇总并提交；也可以继续发送文件或回复「列表」查看。",
    ]
    assert set((await _removals(any_db, rid)).values()) == {("retired", "file")}
    assert len(await _removals(any_db, rid)) == 1000


async def test_an_upload_kept_in_the_earlier_form_still_applies(any_db):
    """Uploads parsed before the compact form kept their marks as [[member id, reason]]."""
    rid, ids, by_id = await _seed(any_db, members=20)
    pairs = [[by_id[ids[i]], REASONS[i % 3].value] for i in range(5)]
    async with any_db.transaction() as s:
        up = Upload(review_id=rid, sha256="d" * 64, file_name="旧.xlsx", status="parsed",
                    rows=5, matched=5, summary={"rows": 5, "matched": 5, "marks": pairs})  # fmt: skip
        s.add(up)
    res = await mr.apply_upload(any_db, rid, up.id)
    assert (res.marked, res.new) == (5, 5)
    assert await _removals(any_db, rid) == {m: (r, "file") for m, r in pairs}
