"""D1–D7: every check accepts what it should and rejects with the right rule code."""

from __future__ import annotations

from datetime import date

import pytest

from dialogs.texts import unit_review as T
from dialogs.unit_review import reject_text
from services import unit_fields as F
from services.validators import Invalid
from storage.models import Union, UnionKind

CUR = {
    "name": "常州市测试有限公司工会委员会",
    "employees_total": 100,
    "members_count": 80,
    "female_count": 30,
    "dispatched_count": 0,
    "migrant_count": 10,
    "union_status": F.STATUS_ESTABLISHED,
    "legal_cert_no": "81320400MC1234567L",
    "term_expiry": "2027-05-01",
    "contact_name": "张三",
    "contact_mobile": "13812345678",
    "other_info": None,
}


def check(key: str, raw: str, edits: dict | None = None, kind: str = "grassroots", **kw):
    return F.check_field(
        key, raw, current=CUR, edits=edits or {}, union_kind=kind, today=date(2026, 11, 27), **kw
    )


def code_of(key: str, raw: str, **kw) -> str:
    with pytest.raises(Invalid) as exc:
        check(key, raw, **kw)
    return exc.value.code


@pytest.mark.parametrize(
    "raw",
    [
        "常州市新北区某某有限公司工会委员会",
        "常州市武进区湖塘镇某某村工会联合会",
        "常州市某某局机关工会委员会",
        "常州市某某工业园区联合工会委员会",
        " 常州市 某某有限公司工会委员会 ",
    ],
)
def test_name_full_forms_accepted(raw: str) -> None:
    assert check("name", raw).value == "".join(raw.split())


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "name.empty"),
        ("常州市某某有限公司工会", "name.short_form"),
        ("某某公司工联会", "name.short_form"),
        ("某某村联合会", "name.short_form"),
        ("工会委员会", "name.short_form"),
        ("常州市某某有限公司", "name.suffix"),
        ("某" * 100 + "工会委员会", "name.too_long"),
    ],
)
def test_name_rejections(raw: str, code: str) -> None:
    assert code_of("name", raw) == code


def test_counts() -> None:
    assert check("employees_total", "120").value == 120
    assert check("employees_total", "１２０人").value == 120
    assert check("dispatched_count", "0").value == 0
    assert check("members_count", "100").value == 100  # equal to the total is fine
    assert code_of("members_count", "12.5") == "count.not_integer"
    assert code_of("members_count", "十二") == "count.not_integer"
    assert code_of("members_count", "-3") == "count.negative"
    assert code_of("members_count", "99999999") == "count.too_large"
    assert code_of("members_count", "101") == "count.exceeds_total"
    assert code_of("female_count", "101") == "count.exceeds_total"
    assert code_of("dispatched_count", "101") == "count.exceeds_total"
    assert code_of("migrant_count", "101") == "count.exceeds_total"
    # The total cannot drop below a current sub-count...
    assert code_of("employees_total", "50") == "count.total_below"
    # ...but can once that sub-count is edited down (other edits count too).
    assert check("employees_total", "50", edits={"members_count": 40}).value == 50
    assert code_of("members_count", "60", edits={"employees_total": 50}) == "count.exceeds_total"


def test_status() -> None:
    assert check("union_status", "1").value == F.STATUS_ESTABLISHED
    assert check("union_status", "建立工会联合会").value == F.STATUS_FEDERATION
    assert check("union_status", "3").value == F.STATUS_NONE
    assert check("union_status", "已建立工会").value == F.STATUS_ESTABLISHED
    assert code_of("union_status", "4") == "status.choice"
    assert code_of("union_status", "有工会") == "status.choice"
    assert check("union_status", "2", kind=UnionKind.joint).value == F.STATUS_FEDERATION
    assert code_of("union_status", "1", kind=UnionKind.joint) == "status.joint"


def test_cert() -> None:
    assert check("legal_cert_no", "89320411mc00012344").value == "89320411MC00012344"
    assert code_of("legal_cert_no", "81320400MC1234567X") == "uscc.invalid"
    assert code_of("legal_cert_no", "12345") == "uscc.invalid"
    assert code_of("legal_cert_no", "91320400MA1MXXXX1U") == "uscc.not_union"
    assert code_of("legal_cert_no", "无") == "uscc.required"  # the union is established
    assert check("legal_cert_no", "无", edits={"union_status": F.STATUS_NONE}).value is None


def test_term_expiry() -> None:
    for raw in ("2027-05-01", "2027年5月1日", "2027/5/1", "2027.5.1"):
        r = check("term_expiry", raw)
        assert r.value == "2027-05-01" and not r.warning
    past = check("term_expiry", "2019-05-01")
    assert past.value == "2019-05-01" and past.warning == "term.expired"
    assert code_of("term_expiry", "明年五月") == "date.format"
    assert code_of("term_expiry", "2027-02-30") == "date.invalid"
    assert code_of("term_expiry", "1800-01-01") == "date.range"


def test_contact() -> None:
    assert check("contact_name", "李四").value == "李四"
    assert check("contact_name", "Mary Lee").value == "Mary Lee"
    assert code_of("contact_name", "李") == "contact.name"
    assert code_of("contact_name", "13812345678") == "contact.name"
    assert check("contact_mobile", "+86 139-1234-5678").value == "13912345678"
    assert code_of("contact_mobile", "1381234") == "mobile.format"
    assert code_of("contact_mobile", "12812345678") == "mobile.format"


def test_other_info() -> None:
    assert check("other_info", "职工之家已建成").value == "职工之家已建成"
    assert check("other_info", "无").value is None
    assert code_of("other_info", "字" * 11, other_info_max=10) == "other.too_long"


def test_cross_field_problems_and_changes() -> None:
    values = F.effective(CUR, {"legal_cert_no": None})
    assert [p.code for p in F.problems(values, "grassroots")] == ["uscc.required"]
    values = F.effective(CUR, {"union_status": F.STATUS_ESTABLISHED})
    assert [p.code for p in F.problems(values, UnionKind.joint)] == ["status.joint"]
    # Old data is not held against a unit that changes nothing related.
    old = F.effective(CUR, {"legal_cert_no": None})
    assert F.problems(old, "grassroots", edited=["contact_name"]) == []
    assert [p.code for p in F.problems(old, "grassroots", edited=["legal_cert_no"])] == [
        "uscc.required"
    ]
    assert F.changed(CUR, {"members_count": 80, "female_count": 31}) == [("female_count", 30, 31)]


def test_convert_unit_edits() -> None:
    u = Union(code="X", kind=UnionKind.grassroots, name="旧名称工会委员会", employees_total=1)
    edits = {"name": "新名称工会委员会", "term_expiry": "2027-05-01"}
    assert [k for k, _, _ in F.changed_on(u, edits)] == ["name", "term_expiry"]
    typed = F.convert_unit_edits(edits)
    assert typed == {"name": "新名称工会委员会", "term_expiry": date(2027, 5, 1)}


def test_every_rule_has_text_with_an_example_or_limit() -> None:
    codes = {
        "name.empty", "name.too_long", "name.short_form", "name.suffix",
        "count.not_integer", "count.negative", "count.too_large", "count.exceeds_total",
        "count.total_below", "status.choice", "status.joint", "uscc.invalid",
        "uscc.not_union", "uscc.required", "date.format", "date.invalid", "date.range",
        "contact.name", "mobile.format", "other.too_long",
    }  # fmt: skip
    assert codes <= set(T.REJECT)
    exc = F.FieldInvalid("count.exceeds_total", "101", field="members_count", total=100)
    assert reject_text(exc) == T.REJECT["count.exceeds_total"].format(label="会员人数", total=100)
    short = reject_text(F.FieldInvalid("name.short_form", "某某工会"))
    assert "某某工会" in short and "工会委员会" in short and "工会联合会" in short
