"""What every member step shares: files are welcome everywhere; a frozen draft is said so."""

from __future__ import annotations

from dialogs.engine import Context, Step
from dialogs.member_review.files import (
    handle_upload,
)
from dialogs.member_review.views import (
    frozen,
)
from dialogs.state import ReviewData
from dialogs.texts import member_review as T
from services.member_review import ReviewNotEditable


async def ensure_review(ctx: Context) -> bool:
    """The cursor names the review (``rid`` ...); if its data was lost, find the draft again."""
    if ReviewData.of(ctx).rid is not None:
        return True
    from dialogs.unit_review import load_entry
    from services import reviews

    ev = ctx.event
    e = await reviews.begin(ctx.db, ctx.settings, ev.platform, ev.user_id, create=False)
    if e.outcome != reviews.Outcome.ok:
        ctx.finish()
        ctx.say(T.NO_DRAFT)
        return False
    load_entry(ctx, e)
    return True


class MemberStep(Step):
    """Common to the member steps: files are welcome everywhere; frozen drafts are said so."""

    accepts = ("text", "upload", "file")
    stage = T.STAGE

    async def handle(self, ctx: Context) -> None:
        if not await ensure_review(ctx):
            return
        try:
            if ctx.event.kind in ("upload", "file"):
                await handle_upload(ctx)
                return
            await self.answer(ctx)
        except ReviewNotEditable:
            await frozen(ctx)

    async def answer(self, ctx: Context) -> None:
        ctx.invalid("")
