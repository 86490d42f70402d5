"""WeCom's card codes stay in the WeCom channel, and the right one updates each card.

Services and dialogs only say which card shows what; the simulator accepts an update only with
a code it issued for that card and not used yet (from the card's send or a click, once).
"""

from __future__ import annotations

from factories import build_tree


def _sent_code(stack, user: str, task_id: str) -> str:
    (code,) = [
        c.response["response_code"]
        for c in stack.sim.calls_to("message/send")
        if c.body.get("touser") == user
        and c.body.get("template_card", {}).get("task_id") == task_id
    ]
    return code


def _updates(stack, user: str) -> list:
    return [
        c for c in stack.sim.calls_to("message/update_template_card") if user in c.body["userids"]
    ]


def _key(card, action: str) -> str:
    return next(b["key"] for b in card.card["button_list"] if f":{action}:" in b["key"])


async def _two_approvers(stack):
    tree = await stack.seed()
    async with build_tree(stack.db, unions=tree.unions) as b:
        b.approver("a_dist2", "DIST", "区总审核员二")
    await stack.submit(tree)
    await stack.deliver()
    [mine] = stack.sim.cards("a_dist")
    [other] = stack.sim.cards("a_dist2")
    return tree, mine, other


async def test_approve_click_in_place_colleague_card_with_its_send_code(stack) -> None:
    tree, mine, other = await _two_approvers(stack)
    reply = await stack.sim.click_button("a_dist", mine.task_id, _key(mine, "approve"))
    assert reply is not None and reply.msg_type == "update_button"  # the click's own answer
    assert "已通过" in mine.replace_name
    # the colleague clicks before their card's update arrived: answered in place too
    late = await stack.sim.click_button("a_dist2", other.task_id, _key(other, "approve"))
    assert late is not None and late.msg_type == "update_button"
    assert "已通过" in other.replace_name and "区总审核员" in other.replace_name
    await stack.deliver()
    # the colleague's active update went out with the code of their card's send
    upd = _updates(stack, "a_dist2")
    assert [(c.body["response_code"], c.errcode) for c in upd] == [
        (_sent_code(stack, "a_dist2", other.task_id), 0)
    ]
    assert _updates(stack, "a_dist") == []  # the clicked card needed no active update
    assert stack.sim.cards(tree.approver_city)  # the next level got its card


async def test_return_updates_the_clicked_card_with_the_click_code(stack) -> None:
    _, mine, other = await _two_approvers(stack)
    ask = await stack.sim.click_button("a_dist", mine.task_id, _key(mine, "return"))
    assert ask is not None and "退回原因" in ask.content and not mine.replace_name
    done = await stack.sim.send_text("a_dist", "会员人数与名单不符")
    assert done is not None and "已退回" in done.content
    await stack.deliver()
    assert "已退回" in mine.replace_name and "已退回" in other.replace_name
    [m] = _updates(stack, "a_dist")
    [o] = _updates(stack, "a_dist2")
    assert (m.errcode, o.errcode) == (0, 0)
    # the clicker's card with the click's code (kept by the channel), not its send's
    assert m.body["response_code"] not in ("", _sent_code(stack, "a_dist", mine.task_id))
    assert o.body["response_code"] == _sent_code(stack, "a_dist2", other.task_id)
