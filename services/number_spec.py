"""List numbers as people type them: ``3``, ``1-5,8``, ``1－5，8``, ``2、4、6``, ``第3份``.

Full-width digits and punctuation are read after NFKC; ``,`` ``，`` ``、`` ``;`` and spaces
separate; ``-`` ``~`` ``—`` ``–`` ``至`` ``到`` make a range. :func:`parse` returns the numbers in
the order typed, without repeats, or raises :class:`SpecError` with a code the dialog words:
``empty``, ``bad``, ``zero``, ``range`` (n > total), ``reversed`` (a > b).
"""

from __future__ import annotations

import re
import unicodedata

MAX_ITEMS = 5000

_SEP = re.compile(r"[,、;；\s]+")
_RANGE = re.compile(r"^(\d+)\s*[-~—–至到]+\s*(\d+)$")
_ONE = re.compile(r"^(\d+)$")
_LEAD = re.compile(r"^第?\s*(\d+)\s*份?")


class SpecError(ValueError):
    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def clean(spec: str) -> str:
    s = unicodedata.normalize("NFKC", spec).strip()
    return s.replace("第", "").replace("份", "").replace("号", "")


def parse(spec: str, total: int) -> list[int]:
    s = clean(spec)
    if not s:
        raise SpecError("empty")
    out: list[int] = []
    seen: set[int] = set()
    for part in _SEP.split(s):
        if not part:
            continue
        if m := _ONE.match(part):
            a = b = int(m.group(1))
        elif m := _RANGE.match(part):
            a, b = int(m.group(1)), int(m.group(2))
            if a > b:
                raise SpecError("reversed", a=a, b=b)
        else:
            raise SpecError("bad", spec=spec.strip())
        if a == 0:
            raise SpecError("zero")
        if b > total:
            raise SpecError("range", n=b, total=total)
        for n in range(a, b + 1):
            if n not in seen:
                seen.add(n)
                out.append(n)
        if len(out) > MAX_ITEMS:
            raise SpecError("range", n=b, total=total)
    if not out:
        raise SpecError("empty")
    return out


def leading_number(text: str) -> tuple[int | None, str]:
    """``"3 会员人数不符"`` → ``(3, "会员人数不符")``; no number first → ``(None, text)``."""
    s = unicodedata.normalize("NFKC", text).strip()
    m = _LEAD.match(s)
    if not m:
        return None, s
    rest = s[m.end() :].lstrip(" ,:;、，：；。.-—")
    return int(m.group(1)), rest.strip()
