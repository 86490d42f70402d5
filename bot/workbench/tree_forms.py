"""What the tree pages (issue 14 point 7) share: approvers only, a unit code checked against the
person's subtree (outside → 403 + audit row), form fields, the service's actor.

The services (:mod:`services.tree`) check scope and rules again and refuse with a Chinese
:class:`~services.tree.common.TreeRefused`; the pages show that message in place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.workbench.core import FORM, Forbidden, Workbench
from services.tree.common import Actor, clean_code
from services.workbench_scope import Viewer, may_see_union
from storage.models import Union

TABS = (
    ("create", "新增单位", "/tree/create"),
    ("dups", "重复单位", "/tree/duplicates"),
    ("split", "拆分联合工会", "/tree/split"),
    ("move", "调整隶属", "/tree/move"),
)


def actor_of(viewer: Viewer) -> Actor:
    return Actor.operator(*viewer.identity)


def require_approver(viewer: Viewer, what: str) -> None:
    """The tree pages are for superior unions' approvers; a contact gets 403 + audit."""
    if not viewer.is_approver:
        raise Forbidden(what, reason="not_approver")


def field(request: Any, name: str, limit: int = 100) -> str:
    value = request[FORM].get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def ints(request: Any, name: str) -> list[int]:
    out = []
    for v in request[FORM].getall(name, []):
        try:
            out.append(int(str(v)))
        except ValueError:
            continue
    return out


async def guard_code(wb: Workbench, viewer: Viewer, code: str, what: str) -> None:
    """A code naming a unit outside the person's subtree: 403 + audit row. Unknown codes pass
    (the service answers 没有编码为 … 的单位)."""
    code = clean_code(code)  # as the services read it (full-width, spaces)
    if not code:
        return
    async with wb.db.session() as s:
        uid = await s.scalar(select(Union.id).where(Union.code == code))
    if uid is not None and not await may_see_union(wb.db, viewer, uid):
        raise Forbidden(what, union_id=uid, code=code)


async def home_code(wb: Workbench, viewer: Viewer) -> str:
    async with wb.db.session() as s:
        return str(await s.scalar(select(Union.code).where(Union.id == viewer.home)) or "")


def render(wb: Workbench, request: Any, viewer: Viewer, template: str, tab: str, **ctx: Any):
    return wb.render(request, viewer, template, active="tree", tabs=TABS, tab=tab, **ctx)


def digest(secret: str, args: dict) -> str:
    """A MAC of exactly what was previewed: the confirm button applies only that (an edited
    form after the preview is previewed again)."""
    import hashlib
    import hmac
    import json

    raw = json.dumps(args, sort_keys=True, ensure_ascii=False, default=str)
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()[:32]


def confirmed(wb: Workbench, request: Any, args: dict) -> bool:
    return field(request, "do", 10) == "confirm" and field(request, "seen", 64) == digest(
        wb.secret, args
    )
