"""The approval flow's typed cursor data (issue 11 point 4)."""

from __future__ import annotations

from types import SimpleNamespace

from dialogs.state import ApprovalData, ReviewData


def test_return_reason_keeps_the_contacts_own_unit() -> None:
    """An approver who is also a contact: the 退回 no longer overwrites the review's ``unit``."""
    data = {"rid": 7, "unit": "本单位工会", "step_id": 0}
    d = ApprovalData.from_dict(data)
    d.step_id, d.return_unit = 12, "下级单位工会"
    d.write_to(data)
    assert data["unit"] == "本单位工会" and data["return_unit"] == "下级单位工会"
    d.clear()
    d.write_to(data)
    assert "step_id" not in data and "return_unit" not in data
    assert ReviewData.from_dict(data).unit == "本单位工会"


def test_a_cursor_saved_by_the_old_code_still_names_the_unit() -> None:
    old = {"step_id": "12", "unit": "下级单位工会"}  # as the code before stored it
    d = ApprovalData.from_dict(old)
    assert d.step_id == 12
    assert d.unit_name(SimpleNamespace(data=old)) == "下级单位工会"
