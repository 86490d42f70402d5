"""The approval card and the approval notices, as neutral messages (M3, M4, S6).

Everything an approver or a contact reads about an approval is worded here, so the wording of
the approval flow reads in one place; :mod:`services.approvals` only decides *when* to send.
Times are shown in Asia/Shanghai.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services import clock
from services.applied import Applied
from services.messages import Button, Card, CardUpdate, Text
from services.removal_rules import is_high_removal  # S6: one home
from storage.models import Decision, RemovalReason
from storage.settings import Settings

TITLE = "年审待审核"
REASON_NAMES = {
    RemovalReason.retired: "退休",
    RemovalReason.resigned: "离职",
    RemovalReason.deceased: "死亡",
}
DECISION_NAMES = {
    Decision.approved: "通过",
    Decision.returned: "退回",
    Decision.withdrawn: "撤回",
}
DECISION_LABELS = {
    Decision.approved: "已通过",
    Decision.returned: "已退回",
    Decision.withdrawn: "已撤回",
}
BUTTON_APPROVE = "通过"
BUTTON_RETURN = "退回"
BUTTON_DETAIL = "查看明细"


def local_time(at: datetime | None) -> str:
    """``2026-11-27 09:30`` in Asia/Shanghai (stored times are UTC)."""
    return clock.minute(at)


def level_text(level: int, levels: int) -> str:
    return f"第 {level} 级，共 {levels} 级"


@dataclass(frozen=True)
class ReviewFacts:
    """What a card or notice says about one submitted review (collected by the service)."""

    review_id: int
    round: int
    year: int
    union_name: str
    members_before: int
    removals: dict[str, int] = field(default_factory=dict)  # reason -> count
    changed_fields: int = 0
    submitter_name: str = ""
    submitted_at: datetime | None = None
    hint_line: str = ""  # services.hints.line: what the approver should check (issue 16)

    @property
    def removed(self) -> int:
        return sum(self.removals.values())

    @property
    def members_after(self) -> int:
        return self.members_before - self.removed


def task_id_for(
    review_id: int, round_: int, level: int, operator_id: int, submitted_at: datetime | None
) -> str:
    """Unique per app and within ``[A-Za-z0-9_\\-@]{1,128}`` (WeCom's rule for ``task_id``).

    The submission time (seconds) keeps ids unique even if a database is ever rebuilt against
    the same WeCom app; a resend of the same card keeps the same id.
    """
    stamp = int(submitted_at.timestamp()) if submitted_at else 0
    return f"rv{review_id}r{round_}l{level}u{operator_id}t{stamp:x}"


def removals_text(removals: dict[str, int]) -> str:
    parts = [f"{REASON_NAMES[r]} {removals.get(r.value, 0)}" for r in RemovalReason]
    return " · ".join(parts)


def approval_card(
    facts: ReviewFacts, *, step_id: int, level: int, levels: int, task_id: str, settings: Settings
) -> Card:
    """The card an approver of ``level`` receives, with 通过 / 退回 / 查看明细."""
    lines = [
        ("单位", facts.union_name),
        ("年度", f"{facts.year} 年"),
        ("会员", f"{facts.members_before} → {facts.members_after}"),
        ("减少", f"{facts.removed} 人（{removals_text(facts.removals)}）"),
        ("单位信息", f"修改 {facts.changed_fields} 项"),
        ("提交", f"{facts.submitter_name} {local_time(facts.submitted_at)}"),
        ("审核", level_text(level, levels)),
    ]
    quote = ""
    if is_high_removal(facts.removed, facts.members_before, settings):
        share = facts.removed / facts.members_before if facts.members_before else 1
        quote = f"⚠ 删除会员较多：{facts.removed} 人，占 {share:.0%}，请核实（S6）"
    if facts.hint_line:
        quote = f"{quote}\n{facts.hint_line}" if quote else facts.hint_line
    return Card(
        task_id=task_id,
        title=TITLE,
        description=f"{facts.union_name} {facts.year} 年度年审",
        lines=lines,
        quote=quote,
        buttons=[
            Button(key=f"appr:approve:{step_id}", text=BUTTON_APPROVE, style=1),
            Button(key=f"appr:return:{step_id}", text=BUTTON_RETURN, style=3),
            Button(key=f"appr:detail:{step_id}", text=BUTTON_DETAIL, style=2),
        ],
    )


def decision_stamp(decision: Decision, who: str, at: datetime | None) -> str:
    """``已由 张三 于 2026-11-27 09:30 通过``: what a decided card says."""
    return f"已由 {who} 于 {local_time(at)} {DECISION_NAMES[decision]}"


def card_update(task_id: str, decision: Decision, who: str, at: datetime | None) -> CardUpdate:
    """The buttons of a decided card turn into one disabled label naming who and when."""
    when = clock.short_minute(at)
    label = f"{DECISION_LABELS[decision]} · {who[:8]} {when}".strip()
    return CardUpdate(task_id=task_id, replace_text=label)


# --- notices (active texts through the outbox) -------------------------------------------


def progress_notice(
    facts: ReviewFacts, passed: str, union_name: str, level: int, levels: int
) -> Text:
    return Text(
        f"{facts.year} 年度年审已由 {passed} 审核通过，"
        f"现等待 {union_name} 审核（{level_text(level, levels)}）。"
    )


def completed_notice(facts: ReviewFacts, who: str, at: datetime | None, done: Applied) -> Text:
    """What the apply did (``done``), not what was marked: marked members who left the unit
    before the last approval are named by count and reason."""
    text = (
        f"{facts.year} 年度年审已于 {local_time(at)} 审核通过（{who}），年审完成。"
        f"已移除 {done.removed} 名会员，现有会员 {done.members_after} 人；单位信息修改已生效。"
    )
    why = []
    if done.transferred:
        why.append(f"{done.transferred} 人在审核期间已调往其他单位")
    if done.gone:
        why.append(f"{done.gone} 人在审核期间已不是本单位的在册会员")
    if why:
        text += (
            f"\n另有 {done.skipped} 人未移除：已不在本单位（" + "；".join(why) + "），无需再处理。"
        )
    return Text(text)


def returned_notice(facts: ReviewFacts, who: str, union_name: str, reason: str) -> Text:
    return Text(
        f"{facts.year} 年度年审被 {union_name} 的 {who} 退回。\n退回原因：{reason}\n"
        "您已填写的内容都还在，请发送“年审”修改后重新提交。"
    )


def withdrawn_notice(facts: ReviewFacts) -> Text:
    return Text(f"{facts.year} 年度年审已撤回，您已填写的内容都还在；发送“年审”继续修改后再提交。")


def no_approver_notice(
    facts: ReviewFacts, union_name: str, level: int, levels: int, conflicted: bool = False
) -> Text:
    if conflicted:  # its approvers all act for the reviewed unit (no self-approval)
        return Text(
            f"{facts.year} 年度年审已提交，但 {union_name}（{level_text(level, levels)}）"
            "的审核人同时是本单位的联系人，不能审核本单位的年审，审核暂时无法进行。"
            "已通知上一级工会；设置其他审核人后审核卡片会立即发出。"
        )
    return Text(
        f"{facts.year} 年度年审已提交，但 {union_name}（{level_text(level, levels)}）"
        "尚未设置审核人，审核暂时无法进行。已通知上一级工会；设置审核人后审核卡片会立即发出。"
    )


def no_approver_upper_notice(facts: ReviewFacts, union_name: str, conflicted: bool = False) -> Text:
    if conflicted:
        return Text(
            f"提醒：{facts.union_name} 的 {facts.year} 年度年审正等待 {union_name} 审核，"
            f"但 {union_name} 的审核人同时是该单位的联系人，不能审核。请为其设置其他审核人。"
        )
    return Text(
        f"提醒：{facts.union_name} 的 {facts.year} 年度年审正等待 {union_name} 审核，"
        f"但 {union_name} 尚未设置审核人。请为其设置审核人。"
    )


# --- re-routing (the unit moved under another superior union while its review waited) ------

REROUTED_COMMENT = "rerouted"  # ApprovalStep.comment of a step closed because the unit moved
REROUTED_NO_PARENT = (
    "本单位已调整为没有上级工会，年审无法送审。请联系上级工会确认隶属关系后重新提交。"
)


def rerouted_label(new_union: str) -> str:
    """What an old card says once its review went to the unit's new superior union."""
    return f"单位已调整隶属，改由 {new_union[:12]} 审核" if new_union else "单位已调整隶属，已失效"


def rerouted_notice(facts: ReviewFacts, old_union: str, new_union: str, levels: int) -> Text:
    return Text(
        f"您单位的隶属关系已调整：{facts.year} 年度年审不再由 {old_union} 审核，"
        f"改由 {new_union} 审核（{level_text(1, levels)}），需从第 1 级重新审核。"
        "您无需重新提交，审核结果会通知您。"
    )


def rerouted_no_parent_notice(facts: ReviewFacts) -> Text:
    return Text(f"{facts.year} 年度年审已退回：{REROUTED_NO_PARENT}")
