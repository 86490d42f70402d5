"""Done-when of issue 14: a contact brings over a member from another unit in chat (补录) and
sees the result when the other side agrees; the whole bot on the WeCom simulator."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.models import AuditLog, Member, MemberStatus, TransferRequest


async def test_transfer_in_agreed_through_the_simulator(stack) -> None:
    tree = await stack.seed(members=3)
    sim, contact, releasing = stack.sim, tree.contact, tree.joint_contact
    member = tree.members["JOINT"][0]

    async def say(user: str, text: str) -> str:
        reply = await sim.send_text(user, text)
        await stack.deliver()
        return (reply.content if reply else "") + "\n".join(sim.texts(user))

    assert "身份证" in await say(contact, "补录")
    await say(contact, member.id_number)
    await say(contact, "张转入")
    shown = await say(contact, "C12345")
    assert "确认" in shown
    assert "转出申请" in await say(contact, "确认")

    # the releasing unit's contact gets the card at the simulator and agrees on it
    (card,) = sim.cards(releasing)
    buttons = {b["text"]: b["key"] for b in card.card["button_list"]}
    assert set(buttons) == {"同意转出", "不同意"}
    await sim.click_button(releasing, card.task_id, buttons["同意转出"])
    await stack.deliver()
    assert sim.cards(releasing)[0].replace_name  # the card answered in place

    # the contact is told, and the member is now theirs (one row, never active twice)
    assert any("已转入" in t for t in sim.texts(contact))
    async with stack.db.session() as s:
        row = await s.get(Member, member.id)
        assert row.union_id == tree.union_id("UNIT") and row.status == MemberStatus.active
        assert row.card_no == "C12345"
        n = await s.scalar(
            select(func.count()).select_from(Member).where(Member.id_number == member.id_number)
        )
        assert n == 1
        req = await s.scalar(select(TransferRequest))
        assert req.status == "agreed"
        assert await s.scalar(select(AuditLog).where(AuditLog.action.like("member.transfer%")))
