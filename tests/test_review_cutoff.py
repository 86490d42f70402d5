"""R2 (issue 14 point 5): members added after the year's cut-off are outside this year's review.

A contact brings in two new members (补录, ``services.transfers``): one before the cut-off, one
after it. The member review's list numbers, its total, its search and the summary's total count
the first and leave out the second (``services.member_review.numbering``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from approval_seed import YEAR, id_number, seed_tree
from sqlalchemy import select

from services import member_review as mr
from services import transfers
from storage.models import Member, ReviewCycle

CUTOFF = date(YEAR, 7, 31)


async def test_members_added_after_the_cutoff_are_outside_the_review(any_db, settings) -> None:
    db = any_db
    t = await seed_tree(db, members=10)
    async with db.transaction() as s:
        s.add(ReviewCycle(year=YEAR, cutoff_date=CUTOFF, deadline=date(YEAR, 12, 31)))
    rid = t.review.id
    page = await mr.list_page(db, rid, 1, 50)
    assert (page.total, len(page.entries)) == (10, 10)

    late = await transfers.apply_transfer_in(
        db, settings, ("wecom", "c_unit"), id_number=id_number(501), name="晚来人",
        now=datetime(YEAR, 9, 1, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    assert late.preview.outside_review and late.member_id
    early = await transfers.apply_transfer_in(
        db, settings, ("wecom", "c_unit"), id_number=id_number(502), name="早来人",
        now=datetime(YEAR, 7, 1, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    assert not early.preview.outside_review
    async with db.session() as s:
        issued = dict((await s.execute(select(Member.id, Member.card_issued_on))).all())
    assert issued[late.member_id] > CUTOFF >= issued[early.member_id]

    page = await mr.list_page(db, rid, 1, 50)
    ids = [e.member_id for e in page.entries]
    assert page.total == 11 and len(ids) == 11
    assert early.member_id in ids and late.member_id not in ids
    assert await mr.last_number(db, rid) == 11
    assert [e.member_id for e in await mr.search(db, rid, "早来人")] == [early.member_id]
    assert await mr.search(db, rid, "晚来人") == []
    assert (await mr.summary(db, settings, rid)).total == 11

    # without a cycle row for the year nobody is left out
    async with db.transaction() as s:
        await s.delete(await s.scalar(select(ReviewCycle)))
    page = await mr.list_page(db, rid, 1, 50)
    assert page.total == 12 and late.member_id in [e.member_id for e in page.entries]


async def test_uploaded_file_does_not_match_a_member_added_after_the_cutoff(any_db, settings):
    """The file mode (M2) uses the same R2 rule as the list: a late member named in an uploaded
    file is a row error that says why, and is not marked."""
    from dialogs.member_review.files import row_error_text
    from services.upload_sheet import Sheet

    db = any_db
    t = await seed_tree(db, members=3)
    async with db.transaction() as s:
        s.add(ReviewCycle(year=YEAR, cutoff_date=CUTOFF, deadline=date(YEAR, 12, 31)))
    late = await transfers.apply_transfer_in(
        db, settings, ("wecom", "c_unit"), id_number=id_number(601), name="晚来人",
        now=datetime(YEAR, 9, 1, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    early = await transfers.apply_transfer_in(
        db, settings, ("wecom", "c_unit"), id_number=id_number(602), name="早来人",
        now=datetime(YEAR, 7, 1, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    ids = [id_number(601), id_number(602)]
    sheet = Sheet(
        "xlsx", ["id", "reason"], 1, [2, 3],
        {"id": ids, "reason": ["退休", "离职"]}, {"id": "ss", "reason": "ss"},
    )  # fmt: skip
    check = await mr.check_file(db, t.review.id, sheet)
    assert set(check.marks) == {early.member_id}
    assert late.member_id not in check.marks
    assert [(e.row, e.code) for e in check.errors] == [(2, "member.after_cutoff")]
    text = row_error_text(check.errors[0], joint=False)
    assert "截止日期之后入会" in text and "不参加今年的年审" in text

    # without a cycle row for the year the late member is matched as before
    async with db.transaction() as s:
        await s.delete(await s.scalar(select(ReviewCycle)))
    check = await mr.check_file(db, t.review.id, sheet)
    assert set(check.marks) == {early.member_id, late.member_id} and not check.errors
