"""The tables. The database is the truth for everything that must survive (DESIGN.md).

Constraints that enforce the domain rules live here, in the schema:
- M6: one review per union per year (``uq_review_union_year``);
- an ID number is active in at most one union (partial unique index ``uq_member_active_id``);
- one decision per approval step: decided with ``UPDATE ... WHERE decision IS NULL``;
- the outbox ``dedup_key`` makes a reminder or notice go once per recipient and occasion.

Times are aware UTC datetimes (``utcnow()``), stored as UTC; shown in Asia/Shanghai.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from storage.request_id import current_request_id


def utcnow() -> datetime:
    """Aware UTC now; the one clock every table uses (sqlmodel stores aware datetimes as UTC)."""
    return datetime.now(UTC)


class UnionKind(StrEnum):
    city_federation = "city_federation"  # 市总工会
    district_federation = "district_federation"  # 区县总工会
    industry_union = "industry_union"  # 产业工会 / 局、公司工会联合会
    grassroots = "grassroots"  # 基层工会
    joint = "joint"  # 联合工会 / 工会联合会

    @property
    def reviews(self) -> bool:
        """Whether a union of this kind does the annual review itself (R1)."""
        return self in (UnionKind.grassroots, UnionKind.joint)


class Role(StrEnum):
    contact = "contact"  # 联系人 / 操作管理员
    approver = "approver"  # 审核人


class MemberStatus(StrEnum):
    active = "active"
    removed = "removed"


class RemovalReason(StrEnum):
    retired = "retired"  # 退休
    resigned = "resigned"  # 离职
    deceased = "deceased"  # 死亡


class ReviewStatus(StrEnum):
    draft = "draft"  # being filled in by the contact
    submitted = "submitted"  # waiting in the approval chain
    returned = "returned"  # sent back with a reason; editable again
    completed = "completed"  # approved at the last level and applied (M5, M6)


class Decision(StrEnum):
    approved = "approved"
    returned = "returned"
    withdrawn = "withdrawn"


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"  # gave up after retries
    unreachable = "unreachable"  # the platform says the recipient cannot be reached (81013)


class Union(SQLModel, table=True):
    """A union in the tree: the city federation down to grassroots and joint unions."""

    __tablename__ = "unions"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    parent_id: int | None = Field(default=None, foreign_key="unions.id", index=True)
    kind: UnionKind = Field(max_length=32)
    registered_on: date | None = None  # registration in the card system (R1)
    is_final_approver: bool = False  # the approval chain ends here (M3)
    # D1-D7
    name: str = Field(max_length=200)  # D1 full name as on the seal
    employees_total: int | None = None  # D2
    members_count: int | None = None
    female_count: int | None = None
    dispatched_count: int | None = None
    migrant_count: int | None = None
    union_status: str | None = Field(default=None, max_length=32)  # D3
    legal_cert_no: str | None = Field(default=None, max_length=32)  # D4 USCC
    term_expiry: date | None = None  # D5
    contact_name: str | None = Field(default=None, max_length=64)  # D6
    contact_mobile: str | None = Field(default=None, max_length=20)
    other_info: str | None = Field(default=None, sa_column=Column(Text))  # D7
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Operator(SQLModel, table=True):
    """A person who acts for a union on a platform: its contact or one of its approvers."""

    __tablename__ = "operators"
    __table_args__ = (
        UniqueConstraint("platform", "user_id", "union_id", "role", name="uq_operator"),
        Index("ix_operator_user", "platform", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    union_id: int = Field(foreign_key="unions.id", index=True)
    platform: str = Field(max_length=16)  # wecom | dingtalk
    user_id: str = Field(max_length=128)
    name: str = Field(max_length=64)
    role: Role = Field(max_length=16)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Member(SQLModel, table=True):
    """A card-holding member. Never deleted: removal sets status, reason, date and review."""

    __tablename__ = "members"
    __table_args__ = (
        Index(
            "uq_member_active_id",
            "id_number",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_member_union_status", "union_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    union_id: int = Field(foreign_key="unions.id")
    id_number: str = Field(max_length=18, index=True)
    name: str = Field(max_length=64)
    card_no: str | None = Field(default=None, max_length=32)
    card_issued_on: date | None = None
    remark: str | None = Field(default=None, max_length=200)  # E4: employer in joint unions
    status: MemberStatus = Field(default=MemberStatus.active, max_length=16)
    removal_reason: RemovalReason | None = Field(default=None, max_length=16)
    removed_on: date | None = None
    removed_by_review_id: int | None = Field(default=None, foreign_key="reviews.id")


class ReviewCycle(SQLModel, table=True):
    """One year's review: who takes part (cutoff, R1) and until when (deadline)."""

    __tablename__ = "review_cycles"

    id: int | None = Field(default=None, primary_key=True)
    year: int = Field(unique=True)
    cutoff_date: date
    deadline: date
    grace_days: int = 0
    opened_at: datetime = Field(default_factory=utcnow)
    closed: bool = False


class Review(SQLModel, table=True):
    """A union's review of one year, from draft to completion (M6: one per union per year)."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("union_id", "year", name="uq_review_union_year"),)

    id: int | None = Field(default=None, primary_key=True)
    union_id: int = Field(foreign_key="unions.id", index=True)
    year: int = Field(index=True)
    status: ReviewStatus = Field(default=ReviewStatus.draft, max_length=16, index=True)
    # {field name: new value as text}; applied to the union only on final approval (U2-U3)
    unit_edits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    unit_confirmed: bool = False  # U3 done
    member_mode: str | None = Field(default=None, max_length=8)  # list | file (M1/M2)
    high_removal_confirmed: bool = False  # S6
    # +1 on every write to the draft (its guard, see services.member_review.drafts._editable); the
    # submission names the revision its checks (S6, E4) were made on
    revision: int = 0
    round: int = 0  # incremented at each submission; approval steps belong to a round
    chain: list[int] = Field(default_factory=list, sa_column=Column(JSON))  # union ids
    current_level: int | None = None  # 1-based index into chain while submitted
    members_before: int | None = None
    started_by: int | None = Field(default=None, foreign_key="operators.id")
    submitted_by: int | None = Field(default=None, foreign_key="operators.id")
    submitted_at: datetime | None = None
    decided_at: datetime | None = None
    completed_at: datetime | None = None
    return_reason: str | None = Field(default=None, sa_column=Column(Text))
    # hints for the approvers (services.hints), set at each submission; hint_count > 0 is the
    # workbench's "has hints" filter
    hints: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    hint_count: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Removal(SQLModel, table=True):
    """A member marked as failing the review, with the reason (M1/M2). Part of the draft."""

    __tablename__ = "removals"
    __table_args__ = (UniqueConstraint("review_id", "member_id", name="uq_removal"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    member_id: int = Field(foreign_key="members.id")
    reason: RemovalReason = Field(max_length=16)
    source: str = Field(default="list", max_length=8)  # list | file
    created_at: datetime = Field(default_factory=utcnow)


class ReviewRoster(SQLModel, table=True):
    """The list numbers of a review (M1), fixed for its life: the unit's active members in id
    order when the list was first needed, members who joined later after the last; a number
    is never reused. ``members`` holds the member ids in number order (number n is the n-th),
    as zlib-compressed little-endian 64-bit integers: one row even for 100,000 members.
    ``roster_sig`` is the unit's active roster when the numbers were last brought up to date
    (``services.member_review``)."""

    __tablename__ = "review_rosters"

    review_id: int = Field(
        foreign_key="reviews.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    members: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    count: int = 0
    roster_sig: str = Field(max_length=80)
    updated_at: datetime = Field(default_factory=utcnow)


class RemarkEdit(SQLModel, table=True):
    """A member's new remark (E4: the employer in a joint union), applied on final approval."""

    __tablename__ = "remark_edits"
    __table_args__ = (UniqueConstraint("review_id", "member_id", name="uq_remark_edit"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    member_id: int = Field(foreign_key="members.id")
    remark: str = Field(max_length=200)


class Upload(SQLModel, table=True):
    """A member file uploaded for a review (M2); the hash recognises the same file sent twice."""

    __tablename__ = "uploads"

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    file_name: str = Field(max_length=255)
    size: int = 0
    status: str = Field(default="received", max_length=16)  # received|parsed|rejected|applied
    rows: int = 0
    matched: int = 0
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class UploadBlob(SQLModel, table=True):
    """A file uploaded through the H5 page, waiting for a worker on any host (``serve`` and
    ``worker`` share only the database and Redis). Deleted as soon as its result is recorded;
    the worker's sweep deletes any left after an hour (``services.upload_store``)."""

    __tablename__ = "upload_blobs"
    __table_args__ = (Index("ix_upload_blob_user", "platform", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    review_id: int
    file_name: str = Field(max_length=255)
    size: int = 0
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ApprovalStep(SQLModel, table=True):
    """One level of one submission round. Decided exactly once (M3, 或签)."""

    __tablename__ = "approval_steps"
    __table_args__ = (UniqueConstraint("review_id", "round", "level", name="uq_step"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="reviews.id", index=True)
    round: int
    level: int  # 1-based
    levels: int  # chain length, for "第 2 级，共 3 级"
    union_id: int = Field(foreign_key="unions.id", index=True)
    decision: Decision | None = Field(default=None, max_length=16)
    decided_by: int | None = Field(default=None, foreign_key="operators.id")
    decided_at: datetime | None = None
    comment: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)


class ApprovalCard(SQLModel, table=True):
    """A card sent to one approver for one step; updated when the step is decided."""

    __tablename__ = "approval_cards"

    id: int | None = Field(default=None, primary_key=True)
    step_id: int = Field(foreign_key="approval_steps.id", index=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    task_id: str = Field(max_length=128, unique=True)
    response_code: str | None = Field(default=None, max_length=256)
    updated: bool = False


class AuditLog(SQLModel, table=True):
    """Append-only record of every decision and refused action."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=160)  # "wecom:userid", "cli", "system"
    action: str = Field(max_length=64)
    union_id: int | None = Field(default=None, index=True)
    review_id: int | None = Field(default=None, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Outbox(SQLModel, table=True):
    """An active send, written in the transaction that causes it; delivered by the worker.

    ``payload`` is platform-neutral (see ``storage.outbox_payload``); the channel turns it
    into the platform's JSON. ``dedup_key`` (unique) makes an occasion send once.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    recipient: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=16)  # text | file | card | card_update
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    dedup_key: str | None = Field(default=None, max_length=200, unique=True)
    status: OutboxStatus = Field(default=OutboxStatus.pending, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    platform_msgid: str | None = Field(default=None, max_length=128)
    response_code: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # the request (callback) that caused the row, for its log lines: ORM and Core inserts alike
    request_id: str | None = Field(
        default_factory=current_request_id,
        sa_column=Column(String(32), default=current_request_id, nullable=True),
    )


class MoveRequest(SQLModel, table=True):
    """A unit to move, with its subtree, into another federation's subtree (S5): the receiving
    side's approvers decide (接收 / 拒绝); decided once (``UPDATE ... WHERE status='pending'``)."""

    __tablename__ = "move_requests"

    id: int | None = Field(default=None, primary_key=True)
    union_id: int = Field(foreign_key="unions.id", index=True)
    from_parent_id: int | None = Field(default=None, foreign_key="unions.id")
    to_parent_id: int = Field(foreign_key="unions.id", index=True)
    requested_by: str = Field(max_length=160)  # actor label, as in the audit log
    status: str = Field(default="pending", max_length=16, index=True)  # pending|accepted|refused
    decided_by: str | None = Field(default=None, max_length=160)
    decided_at: datetime | None = None
    cards: list[list[str]] = Field(
        default_factory=list, sa_column=Column(JSON)
    )  # [plat, uid, task]
    created_at: datetime = Field(default_factory=utcnow)


class TransferRequest(SQLModel, table=True):
    """A member brought over from another unit (E3, 补录): the releasing unit's contact decides
    (同意转出 / 不同意); after ``due_at`` the approvers of the two units' nearest common parent
    do. Decided once (``UPDATE ... WHERE status='pending'``)."""

    __tablename__ = "transfer_requests"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    from_union_id: int = Field(foreign_key="unions.id", index=True)
    to_union_id: int = Field(foreign_key="unions.id", index=True)
    name: str = Field(max_length=64)
    card_no: str | None = Field(default=None, max_length=32)
    requested_by: int | None = Field(default=None, foreign_key="operators.id")
    status: str = Field(default="pending", max_length=16, index=True)  # pending|agreed|refused
    due_at: datetime
    escalated_to: int | None = Field(default=None, foreign_key="unions.id")
    decided_by: str | None = Field(default=None, max_length=160)
    decided_at: datetime | None = None
    cards: list[list[str]] = Field(
        default_factory=list, sa_column=Column(JSON)
    )  # [plat, uid, task]
    created_at: datetime = Field(default_factory=utcnow)
