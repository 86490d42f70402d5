"""Parsing the member list's answers: indices ("5,7-9"), marks ("3 退休"), the command words."""

from __future__ import annotations

import re

from dialogs.texts import member_review as T
from services import member_review as mr
from storage.models import RemovalReason

MAX_PER_COMMAND = 500


class Unclear(ValueError):
    """An answer the list cannot take; ``text`` says exactly why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_SEP_RE = re.compile(r"[,，、;；/\s]+")
_RANGE_RE = re.compile(r"(\d+)\s*[-~～—–至到]\s*(\d+)")
INDEX_PART = r"[\d\s,，、;；/\-~～—–至到]+"
_MARK_RE = re.compile(rf"^(?P<idx>(?:{INDEX_PART})?)\s*(?P<reason>[^\d\s,，、;；/\-~～—–]+)$")
_MARK_REV_RE = re.compile(rf"^(?P<reason>[^\d\s,，、;；/\-~～—–]+)\s*(?P<idx>\d(?:{INDEX_PART})?)$")
UNMARK_RE = re.compile(rf"^(?:取消|撤销|撤回|删除标记|取消标记)\s*(?P<idx>\d(?:{INDEX_PART})?)$")
_WORD_RE = re.compile(r"[^\d\s,，、;；/\-~～—–]+")
PAGE_RE = re.compile(r"^(?:第(\d+)页?|(\d+)页)$")
REMARK_RE = re.compile(r"^备注\s*(\d+)\s*[:：,，]?\s*(.*)$", re.S)
SEARCH_RE = re.compile(r"^(?:搜索|查找|查询|搜|查)\s*[:：]?\s*(.*)$", re.S)
CONFIRM_RE = re.compile(r"^确认删除\s*(\d+)\s*人?$")


def parse_indices(text: str) -> list[int]:
    """ "5,7-9" -> [5, 7, 8, 9]; raises :class:`Unclear` with the precise reason."""
    out: list[int] = []
    text = _RANGE_RE.sub(lambda m: f"{m[1]}-{m[2]}", text.strip())
    for token in _SEP_RE.split(text):
        if not token:
            continue
        if token.isdigit():
            if len(token) > 7:
                raise Unclear(T.LOOKS_LIKE_ID.format(tail=token[-4:]))
            out.append(int(token))
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", token)
        if not m:
            raise Unclear(T.BAD_TOKEN.format(token=token))
        a, b = int(m[1]), int(m[2])
        if a > b:
            raise Unclear(T.BAD_RANGE.format(token=token))
        if b - a >= MAX_PER_COMMAND:
            raise Unclear(T.TOO_MANY.format(max=MAX_PER_COMMAND))
        out.extend(range(a, b + 1))
    if len(out) > MAX_PER_COMMAND:
        raise Unclear(T.TOO_MANY.format(max=MAX_PER_COMMAND))
    seen: set[int] = set()
    return [i for i in out if not (i in seen or seen.add(i))]


def parse_mark(text: str) -> tuple[list[int], RemovalReason]:
    """ "3 退休" / "5,7-9 离职" / "退休 3" -> (indices, reason); else :class:`Unclear`."""
    words = [w for w in _WORD_RE.findall(text) if mr.parse_reason(w)]
    if len({mr.parse_reason(w) for w in words}) > 1:
        raise Unclear(T.TWO_REASONS)
    m = _MARK_RE.match(text) or _MARK_REV_RE.match(text)
    if not m:
        parts = text.split()
        if len(parts) == 2 and mr.parse_reason(parts[1]) and not re.search(r"\d", parts[0]):
            raise Unclear(T.LOOKS_LIKE_NAME.format(name=parts[0], reason=parts[1]))
        raise Unclear(T.LIST_INVALID)
    idx, word = m["idx"].strip(), m["reason"]
    reason = mr.parse_reason(word)
    if not idx:
        if reason is not None:
            raise Unclear(T.NEED_INDEX.format(reason=T.REASON[reason.value]))
        raise Unclear(T.LIST_INVALID)
    if reason is None:
        raise Unclear(T.UNKNOWN_REASON.format(reason=word))
    return parse_indices(idx), reason
