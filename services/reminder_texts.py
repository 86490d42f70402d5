"""The reminders' texts (user-facing, Chinese) and how a list is cut to fit one message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.cycle_rules import Cycle

DIGEST_MAX_LINES = 20


TEXT_MAX_BYTES = 2000  # WeCom refuses a text over 2048 bytes (45002)


# --- the texts (user-facing, Chinese) -------------------------------------------------------
T_CONTACT_HEAD = (
    "【工会服务卡年审提醒】\n{year}年度年审截止日期为{deadline}（{left}）。以下单位尚未完成年审："
)
T_LEFT_DAYS = "还有{n}天"
T_LEFT_TODAY = "今天截止"
T_UNIT_NOT_STARTED = "· {name}：尚未开始"
T_UNIT_DRAFT = "· {name}：已填写，尚未提交"
T_UNIT_RETURNED = "· {name}：已被退回（{reason}），请修改后重新提交"
T_RETURNED_NO_REASON = "未注明原因"
T_UNITS_MORE = "……另有 {n} 个单位未列出"
T_CONTACT_TAIL = "请在应用菜单点击“年审”继续办理。"
T_DIGEST_HEAD = "【年审待审核】您有 {n} 条年审待审核："
T_DIGEST_LINE = "{i}. {name}（第{level}级，共{levels}级；{when}提交）"
T_DIGEST_MORE = "……另有 {n} 条未列出"
T_DIGEST_TAIL = "请在审核卡片上处理；发送“进度”可查看下级单位的年审进度。"

REASON_TEXT = {
    "not_started": "尚未开始",
    "draft": "已填写未提交",
    "returned": "被退回待重新提交",
    "digest": "有待审核的年审",
}


def fmt_day(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


@dataclass(slots=True)
class UnitState:
    code: str
    name: str
    reason: str  # not_started | draft | returned
    return_reason: str | None = None


@dataclass
class PendingItem:
    unit_code: str
    unit_name: str
    level: int
    levels: int
    submitted_at: datetime | None


def _left_text(cycle: Cycle, now: datetime) -> str:
    n = cycle.days_left(now)
    return T_LEFT_TODAY if n <= 0 else T_LEFT_DAYS.format(n=n)


def fit_lines(
    head: list[str], items: list[str], more: str, tail: list[str], max_items: int | None = None
) -> str:
    """Join ``head + items + tail`` within TEXT_MAX_BYTES; items that do not fit become
    ``more`` (formatted with ``n``, the number left out)."""
    fixed = sum(len(x.encode()) + 1 for x in head + tail) + len(more.encode()) + 16
    kept: list[str] = []
    used = fixed
    for item in items[:max_items]:
        size = len(item.encode()) + 1
        if used + size > TEXT_MAX_BYTES:
            break
        kept.append(item)
        used += size
    rest = len(items) - len(kept)
    lines = head + kept + ([more.format(n=rest)] if rest else []) + tail
    return "\n".join(lines)


def contact_head(cycle: Cycle, now: datetime) -> str:
    return T_CONTACT_HEAD.format(
        year=cycle.year, deadline=fmt_day(cycle.deadline), left=_left_text(cycle, now)
    )


def contact_text(
    cycle: Cycle, now: datetime, units: list[UnitState], head: str | None = None
) -> str:
    head_lines = [head if head is not None else contact_head(cycle, now)]
    items = []
    for u in units:
        if u.reason == "returned":
            reason = (u.return_reason or "").strip() or T_RETURNED_NO_REASON
            items.append(T_UNIT_RETURNED.format(name=u.name, reason=reason[:100]))
        elif u.reason == "draft":
            items.append(T_UNIT_DRAFT.format(name=u.name))
        else:
            items.append(T_UNIT_NOT_STARTED.format(name=u.name))
    return fit_lines(head_lines, items, T_UNITS_MORE, [T_CONTACT_TAIL])


def digest_text(cycle: Cycle, items: list[PendingItem]) -> str:
    lines = []
    for i, it in enumerate(items, 1):
        when = fmt_day(it.submitted_at.astimezone(cycle.tz).date()) if it.submitted_at else "—"
        lines.append(
            T_DIGEST_LINE.format(
                i=i, name=it.unit_name, level=it.level, levels=it.levels, when=when
            )
        )
    head = [T_DIGEST_HEAD.format(n=len(items))]
    return fit_lines(head, lines, T_DIGEST_MORE, [T_DIGEST_TAIL], max_items=DIGEST_MAX_LINES)
