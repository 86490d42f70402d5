"""What every tree operation shares: the actor and its subtree, refusals, locks, the audit.

- :class:`Actor`: an operator (platform, user id) acts within the subtrees of the unions it is an
  active operator of; ``Actor.staff()`` (the city federation's CLI) acts anywhere.
- :class:`TreeRefused`: the operation cannot be done; ``str(exc)`` is the Chinese reason,
  ``exc.code`` a stable code for front ends and tests.
- :func:`lock_units`: the first statement of every apply: ``UPDATE unions SET updated_at`` on
  the units involved, in id order. On PostgreSQL this takes the row locks (a second operation
  on the same units waits, then sees the first one's result); on SQLite it takes the database's
  write lock at once. Everything is checked again after it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.unit_fields import FieldInvalid, check_name
from storage.models import (
    AuditLog,
    Member,
    MemberStatus,
    Operator,
    Review,
    ReviewStatus,
    Role,
    Union,
    UnionKind,
)

IN_PROGRESS = (ReviewStatus.draft, ReviewStatus.submitted, ReviewStatus.returned)
KIND_NAMES = {
    UnionKind.city_federation: "市总工会",
    UnionKind.district_federation: "区县总工会",
    UnionKind.industry_union: "产业工会",
    UnionKind.grassroots: "基层工会",
    UnionKind.joint: "联合工会",
}
NAME_REASONS = {
    "name.empty": "单位名称不能为空（D1）",
    "name.too_long": "单位名称太长（D1）",
    "name.short_form": "单位名称须为印章上的全称，如“常州市XX有限公司工会委员会”（D1）",
    "name.suffix": "单位名称须以“工会委员会”“工会联合会”或“联合工会委员会”结尾（D1）",
}
# D2-D7: a unit "holds unit information" when any of these is filled in (S3)
INFO_FIELDS = (
    "employees_total",
    "members_count",
    "female_count",
    "dispatched_count",
    "migrant_count",
    "union_status",
    "legal_cert_no",
    "term_expiry",
    "contact_name",
    "contact_mobile",
    "other_info",
)


class TreeRefused(Exception):
    """The operation cannot be done; the message is Chinese and says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Actor:
    label: str  # as in the audit log: "wecom:userid" or "cli:staff"
    identity: tuple[str, str] | None = None
    staff: bool = False

    @classmethod
    def operator(cls, platform: str, user_id: str) -> Actor:
        return cls(f"{platform}:{user_id}", (platform, user_id))

    @classmethod
    def cli(cls, who: str = "staff") -> Actor:
        return cls(f"cli:{who}", None, True)


def check_unit_name(raw: str) -> str:
    """D1, by the same rule as the review's unit information (services.unit_fields)."""
    try:
        return check_name(raw)
    except FieldInvalid as exc:
        reason = NAME_REASONS.get(exc.code, "单位名称不合规（D1）")
        raise TreeRefused("name.d1", f"{reason}：{raw}") from None


async def ancestors(s: AsyncSession, union_id: int) -> list[int]:
    """``union_id`` and its ancestors, nearest first (cycle-safe)."""
    out: list[int] = []
    cur: int | None = union_id
    while cur is not None and cur not in out:
        out.append(cur)
        cur = await s.scalar(select(Union.parent_id).where(Union.id == cur))
    return out


def subtree_cte(root_id: int):
    """Recursive CTE of ``id`` for ``root_id`` and every unit below it (SQLite and PostgreSQL)."""
    base = select(Union.id.label("id")).where(Union.id == root_id).cte("sub", recursive=True)
    return base.union_all(select(Union.id).where(Union.parent_id == base.c.id))


async def subtree_ids(s: AsyncSession, root_id: int) -> list[int]:
    sub = subtree_cte(root_id)
    return list(await s.scalars(select(sub.c.id)))


async def actor_units(s: AsyncSession, actor: Actor) -> list[int]:
    if actor.identity is None:
        return []
    rows = await s.scalars(
        select(Operator.union_id).where(
            Operator.platform == actor.identity[0],
            Operator.user_id == actor.identity[1],
            Operator.active.is_(True),
        )
    )
    return sorted(set(rows))


async def in_scope(s: AsyncSession, actor: Actor, union_id: int, *, strict: bool) -> bool:
    """Whether ``union_id`` is in the actor's subtree (``strict``: below the actor's own unit)."""
    if actor.staff:
        return True
    own = set(await actor_units(s, actor))
    chain = await ancestors(s, union_id)
    return bool(own & set(chain[1:] if strict else chain))


async def require_scope(
    s: AsyncSession, actor: Actor, union: Union, *, strict: bool = True
) -> None:
    if not await in_scope(s, actor, union.id or 0, strict=strict):
        raise TreeRefused("scope", f"{union.name}（{union.code}）不在您管理的单位范围内，不能操作")


def clean_code(raw: str) -> str:
    """A unit code as typed (CLI, chat, forms) → as stored: NFKC (full-width letters and digits),
    without any space, zero-width, bidi or control character (a code never holds one; the
    units import reads its cells the same way)."""
    text = unicodedata.normalize("NFKC", raw or "")
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c)[0] not in "CZ")


async def unit_by_code(s: AsyncSession, code: str) -> Union:
    code = clean_code(code)
    union = await s.scalar(select(Union).where(Union.code == code))
    if union is None:
        raise TreeRefused("unit.not_found", f"没有编码为 {code or '（空）'} 的单位")
    return union


async def review_in_progress(s: AsyncSession, union_id: int, year: int) -> Review | None:
    return await s.scalar(
        select(Review)
        .where(Review.union_id == union_id, Review.year == year, Review.status.in_(IN_PROGRESS))
        .limit(1)
    )


async def refuse_if_reviewing(s: AsyncSession, union: Union, year: int) -> None:
    review = await review_in_progress(s, union.id or 0, year)
    if review is not None:
        state = "已提交待审核" if review.status == ReviewStatus.submitted else "正在进行"
        raise TreeRefused(
            "review.in_progress",
            f"{union.name} 的 {year} 年度年审{state}，年审结束前不能合并或拆分该单位",
        )


async def lock_units(s: AsyncSession, ids: list[int], now: datetime) -> None:
    """Take the units' locks first (see the module); one statement per unit, in id order."""
    for uid in sorted(set(ids)):
        await s.execute(
            update(Union)
            .where(Union.id == uid)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )


async def active_members(s: AsyncSession, union_id: int) -> int:
    n = await s.scalar(
        select(func.count())
        .select_from(Member)
        .where(Member.union_id == union_id, Member.status == MemberStatus.active)
    )
    return int(n or 0)


async def any_members(s: AsyncSession, union_id: int) -> bool:
    return (
        await s.scalar(select(literal(1)).where(Member.union_id == union_id).limit(1))
    ) is not None


def has_info(union: Union) -> bool:
    return any(getattr(union, f) not in (None, "") for f in INFO_FIELDS)


async def approvers(s: AsyncSession, union_id: int) -> list[Operator]:
    return list(
        await s.scalars(
            select(Operator)
            .where(
                Operator.union_id == union_id,
                Operator.role == Role.approver,
                Operator.active.is_(True),
            )
            .order_by(Operator.id)
        )
    )


async def contacts(s: AsyncSession, union_id: int) -> list[Operator]:
    return list(
        await s.scalars(
            select(Operator)
            .where(
                Operator.union_id == union_id,
                Operator.role == Role.contact,
                Operator.active.is_(True),
            )
            .order_by(Operator.id)
        )
    )


def audit(
    s: AsyncSession,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    union_id: int | None,
    before: Any = None,
    after: Any = None,
    **detail: Any,
) -> None:
    """One audit row: who, what, before → after (the same table as the approvals' audit)."""
    s.add(
        AuditLog(
            at=at,
            actor=actor.label,
            action=action,
            union_id=union_id,
            detail={"before": before, "after": after, **detail},
        )
    )


def parse_operator(raw: str) -> tuple[str, str, str]:
    """``PLATFORM:USERID:NAME`` (the CLI's ``--operator``) -> (platform, user id, name)."""
    parts = raw.split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise TreeRefused(
            "operator.format",
            f"操作管理员应写作 平台:用户ID:姓名，例如 wecom:zhangsan:张三（收到：{raw}）",
        )
    platform = {"企业微信": "wecom", "钉钉": "dingtalk"}.get(parts[0].strip(), parts[0].strip())
    if platform not in ("wecom", "dingtalk"):
        raise TreeRefused("operator.platform", f"平台应为 wecom 或 dingtalk（收到：{parts[0]}）")
    return platform, parts[1].strip(), parts[2].strip()


def add_contact(
    s: AsyncSession, union_id: int, operator: tuple[str, str, str], now: datetime
) -> None:
    """The new unit's contact, named as ``(platform, user id, name)``."""
    platform, user_id, name = operator
    s.add(
        Operator(
            union_id=union_id,
            platform=platform,
            user_id=user_id,
            name=name,
            role=Role.contact,
            created_at=now,
        )
    )
