"""The shared test stack works end to end: a chat through the simulator, a card and its click."""

from __future__ import annotations

from sqlmodel import select

from services.messages import Button, Card, CardUpdate, Text
from services.outbox import enqueue
from storage.models import Outbox


async def test_chat_and_card_through_the_stack(stack) -> None:
    tree = await stack.seed()
    reply = await stack.sim.send_text(tree.contact, "帮助")
    assert reply is not None and reply.msg_type == "text" and reply.content
    await stack.deliver()
    assert stack.sim.inbox(tree.contact)[0].via == "passive"

    card = Card(
        task_id="harness-card-1",
        title="年审待审核",
        description="常州市天宁区示例科技有限公司工会委员会",
        lines=[("单位", "示例科技"), ("减少会员", "2 人")],
        buttons=[Button("test:approve:1", "通过"), Button("test:return:1", "退回", 3)],
    )
    async with stack.db.transaction() as s:
        enqueue(s, "wecom", tree.approver_district, card)
        enqueue(s, "wecom", tree.approver_district, Text("请审核"))
    assert await stack.deliver() == 2
    got = stack.sim.card(tree.approver_district, "harness-card-1")
    assert got is not None and got.card["main_title"]["title"] == "年审待审核"
    assert stack.sim.texts(tree.approver_district) == ["请审核"]

    # the card's response code (recorded on the outbox row) turns the buttons into a label:
    # the update names only the card, the WeCom channel finds the code
    async with stack.db.session() as s:
        row = (await s.execute(select(Outbox).where(Outbox.kind == "card"))).scalar_one()
    assert row.status == "sent" and row.response_code
    update = CardUpdate("harness-card-1", "已处理")
    async with stack.db.transaction() as s:
        enqueue(s, "wecom", tree.approver_district, update)
    await stack.deliver()
    assert got.replace_name == "已处理"
    calls = stack.sim.calls_to("message/update_template_card")
    assert [c.errcode for c in calls] == [0]
    assert calls[0].body["response_code"] == row.response_code


async def test_approval_card_click_updates_the_card(stack) -> None:
    tree = await stack.seed()
    await stack.submit(tree)
    await stack.deliver()
    [card] = stack.sim.cards(tree.approver_district)
    approve = next(b["key"] for b in card.card["button_list"] if ":approve:" in b["key"])
    reply = await stack.sim.click_button(tree.approver_district, card.task_id, approve)
    assert reply is not None and reply.msg_type == "update_button"
    assert card.replace_name == reply.replace_name
    await stack.deliver()
    assert stack.sim.cards(tree.approver_city)  # the next level got its card


async def test_file_message_is_downloaded_and_answered(stack) -> None:
    tree = await stack.seed()
    reply = await stack.sim.send_file(tree.contact, "名单.csv", "身份证号码\n".encode())
    assert reply is not None and reply.content  # acknowledged at once
    await stack.deliver()
    assert [c.errcode for c in stack.sim.calls_to("media/get")] == [0]
    assert len(stack.sim.inbox(tree.contact)) >= 2  # the result came actively
