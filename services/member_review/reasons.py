"""Removal reasons (M1): the words a contact or a file may use, and the upload's columns.

Reasons (:func:`parse_reason`): 退休 and its variants 离休 / 离退休 / 已退休 / 退休人员 mean
retired; 离职 / 辞职 / 调离 / 调出 / 解除合同 / 辞退 / 开除 / 已离职 mean left (resigned);
死亡 / 去世 / 身故 / 病故 / 已故 / 亡故 / 过世 / 死亡人员 mean deceased. The match is on the
whole normalised word (NFKC, spaces and punctuation removed), never on a substring, because
离退休 (retired) contains 离 and a substring rule would read it as left; anything else is
``reason.unknown``.
"""

from __future__ import annotations

import re
import unicodedata

from services.upload_sheet import Column
from storage.models import (
    RemovalReason,
)

REASON_LABELS: dict[RemovalReason, str] = {
    RemovalReason.retired: "退休",
    RemovalReason.resigned: "离职",
    RemovalReason.deceased: "死亡",
}
_REASON_WORDS: dict[str, RemovalReason] = {
    **dict.fromkeys(
        ["退休", "离休", "离退休", "已退休", "退休人员", "retired", "retire"], RemovalReason.retired
    ),
    **dict.fromkeys(
        [
            "离职",
            "已离职",
            "辞职",
            "调离",
            "调出",
            "解除合同",
            "解除劳动合同",
            "辞退",
            "开除",
            "离职人员",
            "resigned",
            "left",
        ],
        RemovalReason.resigned,
    ),
    **dict.fromkeys(
        ["死亡", "去世", "身故", "病故", "已故", "亡故", "过世", "已去世", "死亡人员", "deceased"],
        RemovalReason.deceased,
    ),
}
_PUNCT_RE = re.compile(r"[\s\u200b-\u200d\u2060\ufeff'\"`‘’“”。.,，、;；:：!！?？()（）\[\]【】]")

# The columns of an upload (the template's headers and the usual variants).
COLUMNS = (
    Column("id", ("身份证", "证件号", "公民身份号码")),
    Column("name", ("姓名",)),
    Column("reason", ("不通过原因", "原因", "类型")),
    Column("employer", ("所在单位", "工作单位", "单位名称")),
)


def parse_reason(text: str) -> RemovalReason | None:
    """The reason named by ``text`` (see the module doc), or None."""
    word = _PUNCT_RE.sub("", unicodedata.normalize("NFKC", text or "")).lower()
    return _REASON_WORDS.get(word)
