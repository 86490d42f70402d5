"""工作台 (issue 13 point 2): the chat answers with the workbench's sign-in link (WeCom OAuth, or
DingTalk's in-app sign-in page for a DingTalk user); also the app menu key ``workbench``."""

from __future__ import annotations

from dialogs.engine import Context, command
from dialogs.texts import workbench as T
from services.workbench_links import link_for
from services.workbench_scope import load_viewer


async def workbench_link(ctx: Context) -> bool:
    viewer = await load_viewer(ctx.db, ctx.user)
    if not viewer.known:
        ctx.say(T.NOT_OPERATOR)
        return True
    ctx.say(T.LINK.format(url=link_for(ctx.settings, ctx.user[0])))
    return True


command(*T.CMD)(workbench_link)
command(*(f"menu:{k}" for k in T.MENU_KEYS))(workbench_link)
