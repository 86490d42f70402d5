"""The typed cursor data of each flow (issue 11 point 4).

Field names are the keys the cursor has always stored, so a cursor saved before these
structures existed (live in Redis at deploy time) loads unchanged; see
:class:`~dialogs.engine.FlowData` for how odd values are tolerated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dialogs.engine import Context, FlowData


@dataclass
class ReviewData(FlowData):
    """Set by the unit review (``load_entry``); read by the member review, the suggestions and
    the router's "still a contact?" check."""

    rid: int | None = None  # the review
    uid: int | None = None  # its union
    unit: str = ""  # the union's name
    kind: str = ""  # the union's kind ("joint" for a joint union)
    cur: dict[str, Any] = field(default_factory=dict)  # the union's current values
    edits: dict[str, Any] = field(default_factory=dict)  # the draft's unit edits (mirror)

    @property
    def review_id(self) -> int:
        """``rid``, which the steps past the entry rely on (KeyError without it, as before)."""
        if self.rid is None:
            raise KeyError("rid")
        return self.rid

    @property
    def joint(self) -> bool:
        return self.kind == "joint"


@dataclass
class MemberData(FlowData):
    """The member review's own scratch data."""

    page: int = 1  # the list page shown last
    pending: int | None = None  # an upload with errors waiting for 接受
    quiet: bool = False  # one-off: enter members.file without repeating the template
    retire_n: int = 0  # 全部标记退休: the count the confirmation named


@dataclass
class ApprovalData(FlowData):
    """The approver's 退回 while its reason is asked (``appr.return_reason``).

    ``return_unit`` has its own key: the review's ``unit`` (:class:`ReviewData`) belongs to a
    person who is a contact too and must survive the 退回. A cursor saved by the old code
    (``unit``) still shows the name through :attr:`unit_name`."""

    step_id: int = 0
    return_unit: str = ""

    def unit_name(self, ctx: Context) -> str:
        return self.return_unit or str(ctx.data.get("unit", ""))

    def clear(self) -> None:
        self.step_id = 0
        self.return_unit = ""
