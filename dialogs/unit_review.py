"""The unit-information review (U1–U3, D1–D7): entry, the list, editing one field, confirmation.

Steps: ``unit.show`` (the numbered list) → ``unit.pick`` (which number) →
``unit.edit.<field>`` (the new value; one step per field, e.g. ``unit.edit.mobile``) → back to
``unit.show`` → ``unit.confirm`` (old → new) → ``members.start`` (the member review's flow).

Cursor data: :class:`~dialogs.state.ReviewData` (also read by the member review): ``rid``
(review id), ``uid`` (union id), ``unit`` (union name), ``kind`` (union kind), ``cur`` (the
union's current values), ``edits`` (the draft's unit edits, mirrored from the database where
every accepted edit is saved at once).
"""

from __future__ import annotations

from typing import Any

from dialogs.engine import Context, Step, entry, resume, step
from dialogs.state import ReviewData
from dialogs.texts import unit_review as T
from services import reviews, unit_fields
from services.reviews import Entry, Outcome
from services.unit_fields import BY_KEY, BY_NUMBER, FIELDS
from services.validators import Invalid

MEMBERS_START = "members.start"
LIST_VALUE_CHARS = 40
CONFIRM_VALUE_CHARS = 60
STAGE = "单位信息年审"

# Short, stable step names per field: unit.edit.<short>.
SHORT = {
    "name": "name",
    "employees_total": "total",
    "members_count": "members",
    "female_count": "female",
    "dispatched_count": "dispatched",
    "migrant_count": "migrant",
    "union_status": "status",
    "legal_cert_no": "cert",
    "term_expiry": "expiry",
    "contact_name": "contact",
    "contact_mobile": "mobile",
    "other_info": "other",
}


# -- helpers ----------------------------------------------------------------------------------


def show(value: Any, limit: int = 0) -> str:
    """A value as the list shows it; long text is cut to ``limit`` characters (keeps the whole
    answer within one passive reply)."""
    if value is None or value == "":
        return T.EMPTY
    text = str(value)
    if limit and len(text) > limit:
        return T.CUT.format(head=text[:limit], n=len(text))
    return text


def reject_text(exc: Invalid) -> str:
    params: dict[str, Any] = {"value": exc.value}
    params.update(getattr(exc, "params", {}))
    if "field" in params:
        params["label"] = T.LABELS.get(params["field"], "")
    template = T.REJECT.get(exc.code, T.REJECT_DEFAULT)
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return T.REJECT_DEFAULT


def load_entry(ctx: Context, e: Entry) -> None:
    """Put the review and the union's current values into the cursor."""
    assert e.review is not None and e.union is not None
    d = ReviewData.of(ctx)
    d.rid, d.uid, d.unit, d.kind = e.review.id, e.union.id, e.union.name, str(e.union.kind)
    d.cur = reviews.snapshot(e.union)
    d.edits = dict(e.review.unit_edits or {})


async def go_members(ctx: Context) -> None:
    """On to the member review; if that flow is not deployed yet, say so and wait there."""
    await ctx.goto(MEMBERS_START)
    if ctx.registry.get(MEMBERS_START) is None:
        ctx.say(T.MEMBERS_NEXT)


async def continue_review(ctx: Context, e: Entry) -> None:
    """Resume at the unit list, or at the member review once the unit part is confirmed (a
    returned review starts again at the unit list, so the contact sees what was sent back)."""
    load_entry(ctx, e)
    ctx.cursor.history = []
    assert e.review is not None
    if e.review.unit_confirmed and e.review.status != "returned":
        await go_members(ctx)
    else:
        await ctx.goto("unit.show", remember=False)


def outcome_text(ctx: Context, e: Entry) -> str:
    s = ctx.settings.review
    unit = e.union.name if e.union else ""
    if e.outcome == Outcome.nobody:
        return T.NOT_CONTACT
    if e.outcome == Outcome.approver:
        return T.APPROVER.format(unions="、".join(e.approver_of))
    if e.outcome == Outcome.not_reviewing:
        return T.NOT_REVIEWING.format(unit=unit)
    if e.outcome == Outcome.not_registered:
        assert e.union is not None and e.cycle is not None
        return T.NOT_REGISTERED.format(
            unit=unit, registered=e.union.registered_on, cutoff=e.cycle.cutoff_date
        )
    if e.outcome == Outcome.closed:
        deadline = e.cycle.last_start_day if e.cycle else s.deadline
        return T.CLOSED.format(deadline=deadline)
    if e.outcome == Outcome.completed:
        assert e.review is not None
        when = reviews.local_date(e.review.completed_at, ctx.settings)
        return T.COMPLETED.format(unit=unit, year=s.year, date=when)
    if e.outcome == Outcome.submitted:
        if e.waiting:
            w = e.waiting
            return T.SUBMITTED.format(unit=unit, union=w.union_name, level=w.level, levels=w.levels)
        return T.SUBMITTED_PLAIN.format(unit=unit)
    return ""


def _deadline(ctx: Context, e: Entry) -> str:
    return (e.cycle.deadline if e.cycle else ctx.settings.review.deadline).isoformat()


# -- entry and resume -------------------------------------------------------------------------


@entry
async def start_or_resume(ctx: Context) -> bool:
    """年审 / the menu: U1 checks, then start or resume at the right step."""
    ev = ctx.event
    e = await reviews.begin(
        ctx.db, ctx.settings, ev.platform, ev.user_id, roles_version=ctx.cursor.roles_version
    )
    if e.outcome != Outcome.ok:
        if ctx.cursor.step.split(".", 1)[0] in ("unit", "members", "core"):
            ctx.finish()  # a contact's conversation that cannot go on (e.g. now submitted)
        ctx.say(outcome_text(ctx, e))  # an approver's own dialog (appr.*) is left as it is
        return True
    assert e.review is not None and e.union is not None
    same = ctx.cursor.exists and ReviewData.of(ctx).rid == e.review.id
    current = ctx.registry.get(ctx.cursor.step) if same else None
    head = T.START if e.created else T.RESUME
    ctx.say(
        head.format(year=ctx.settings.review.year, unit=e.union.name, deadline=_deadline(ctx, e))
    )
    if e.review.status == "returned" and e.review.return_reason:
        ctx.say(T.RETURNED.format(reason=e.review.return_reason))
    if current is not None and not ctx.cursor.step.startswith("core."):
        await ctx.prompt()  # already in the middle: carry on where the user is
        return True
    await continue_review(ctx, e)
    return True


@resume
async def resume_from_draft(ctx: Context) -> bool:
    """The cursor was lost: pick up this year's draft, if there is one."""
    ev = ctx.event
    e = await reviews.begin(
        ctx.db, ctx.settings, ev.platform, ev.user_id, create=False,
        roles_version=ctx.cursor.roles_version,
    )  # fmt: skip
    if e.outcome != Outcome.ok:
        return False
    await continue_review(ctx, e)
    return True


# -- the list (U2) ----------------------------------------------------------------------------


def list_text(ctx: Context) -> str:
    d = ReviewData.of(ctx)
    cur, edits = d.cur, d.edits
    lines = [T.LIST_HEAD]
    for f in FIELDS:
        edited = f.key in edits and edits[f.key] != cur.get(f.key)
        value = edits[f.key] if edited else cur.get(f.key)
        lines.append(
            T.LIST_LINE.format(
                n=f.number,
                label=T.LABELS[f.key],
                value=show(value, LIST_VALUE_CHARS),
                mark=T.EDITED_MARK if edited else "",
            )
        )
    changed = unit_fields.changed(cur, edits)
    lines.append("")
    lines.append(T.LIST_ASK_EDITED if changed else T.LIST_ASK)
    return "\n".join(lines)


def _field_number(word: str) -> int | None:
    if word.isdigit() and int(word) in BY_NUMBER:
        return int(word)
    return None


async def _edit(ctx: Context, number: int) -> None:
    await ctx.goto(f"unit.edit.{SHORT[BY_NUMBER[number].key]}")


@step("unit.show")
class ShowUnit(Step):
    help = T.SHOW_HELP
    keywords = ("无变更", "修改", "下一步", "继续")
    stage = STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(list_text(ctx))

    async def handle(self, ctx: Context) -> None:
        word = ctx.word
        if word in ("修改", "更改", "改"):
            await ctx.goto("unit.pick")
            return
        if (n := _field_number(word)) is not None:
            await _edit(ctx, n)
            return
        if word in ("无变更", "下一步", "没有变更", "无", "不变", "正确", "继续"):
            d = ReviewData.of(ctx)
            cur, edits = d.cur, d.edits
            values = unit_fields.effective(cur, edits)
            edited = [k for k, _, _ in unit_fields.changed(cur, edits)]
            found = unit_fields.problems(values, d.kind, edited)
            if found:
                ctx.invalid("\n".join([T.CROSS_PROBLEMS, *(reject_text(p) for p in found)]))
                return
            if unit_fields.changed(cur, edits):
                await ctx.goto("unit.confirm")
                return
            if not await reviews.confirm_unit(ctx.db, ReviewData.of(ctx).review_id):
                ctx.finish()
                ctx.say(T.NOT_EDITABLE)
                return
            ctx.say(T.NO_CHANGES)
            await go_members(ctx)
            return
        ctx.invalid(T.SHOW_INVALID)


@step("unit.pick")
class PickField(Step):
    help = T.PICK_HELP
    stage = STAGE

    async def prompt(self, ctx: Context) -> None:
        ctx.say(T.PICK)

    async def handle(self, ctx: Context) -> None:
        n = _field_number(ctx.word)
        if n is None:
            ctx.invalid(T.PICK_INVALID)
            return
        await _edit(ctx, n)


class EditField(Step):
    """Type the new value of one field; one registered subclass per field."""

    help = T.VALUE_HELP
    stage = STAGE
    key: str = ""

    async def prompt(self, ctx: Context) -> None:
        d = ReviewData.of(ctx)
        cur, edits = d.cur, d.edits
        value = edits.get(self.key, cur.get(self.key))
        hint = T.HINTS[self.key].format(max=ctx.settings.review.other_info_max_chars)
        ctx.say(T.ASK_VALUE.format(label=T.LABELS[self.key], value=show(value, 100), hint=hint))

    async def handle(self, ctx: Context) -> None:
        d = ReviewData.of(ctx)
        cur, edits = d.cur, d.edits
        others = {k: v for k, v in edits.items() if k != self.key}
        try:
            checked = unit_fields.check_field(
                self.key,
                ctx.event.text,
                current=cur,
                edits=others,
                union_kind=d.kind,
                other_info_max=ctx.settings.review.other_info_max_chars,
            )
        except Invalid as exc:
            ctx.invalid(reject_text(exc))
            return
        label = T.LABELS[self.key]
        new_edits = dict(others)
        if checked.value == cur.get(self.key):
            ctx.say(T.UNCHANGED)
        else:
            new_edits[self.key] = checked.value
            ctx.say(T.SAVED.format(label=label, value=show(checked.value, LIST_VALUE_CHARS)))
        if new_edits != edits and not await reviews.save_unit_edits(
            ctx.db, ReviewData.of(ctx).review_id, new_edits
        ):
            ctx.finish()
            ctx.say(T.NOT_EDITABLE)
            return
        d.edits = new_edits
        if checked.warning == "term.expired":
            ctx.say(T.WARN_TERM_EXPIRED.format(**checked.params))
        ctx.cursor.history = []
        await ctx.replace("unit.show")


for _key, _short in SHORT.items():
    assert _key in BY_KEY
    step(f"unit.edit.{_short}")(type(f"Edit_{_short}", (EditField,), {"key": _key}))


# -- the confirmation (U3) ----------------------------------------------------------------------


@step("unit.confirm")
class ConfirmUnit(Step):
    help = T.CONFIRM_HELP
    keywords = ("确认",)
    overrides = ("取消",)
    stage = STAGE

    async def prompt(self, ctx: Context) -> None:
        d = ReviewData.of(ctx)
        cur, edits = d.cur, d.edits
        lines = [T.CONFIRM_HEAD]
        for key, old, new in unit_fields.changed(cur, edits):
            lines.append(
                T.CONFIRM_LINE.format(
                    label=T.LABELS[key],
                    old=show(old, CONFIRM_VALUE_CHARS),
                    new=show(new, CONFIRM_VALUE_CHARS),
                )
            )
        lines.append("")
        lines.append(T.CONFIRM_ASK)
        ctx.say("\n".join(lines))

    async def handle(self, ctx: Context) -> None:
        word = ctx.word
        if word in ("确认", "确定", "是", "正确", "提交"):
            if not await reviews.confirm_unit(ctx.db, ReviewData.of(ctx).review_id):
                ctx.finish()
                ctx.say(T.NOT_EDITABLE)
                return
            ctx.say(T.CONFIRMED)
            ctx.cursor.history = []
            await go_members(ctx)
        elif word in ("取消", "修改", "返回", "否", "不对"):
            ctx.cursor.history = []
            await ctx.goto("unit.show", remember=False)
        else:
            ctx.invalid(T.CONFIRM_INVALID)
