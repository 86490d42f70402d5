"""File names from outside (the H5 form, a chat file, a name put into a media upload).

A name is only ever shown and put into a ``Content-Disposition``; it is never part of a path.
:func:`clean_file_name` keeps what a person would recognise and drops what could hurt: control
characters (CR/LF and NUL among them: a CR/LF in a multipart header is refused by the HTTP
client, and a media upload that always fails blocks its recipient's outbox), bidi and other
invisible format characters, path parts, quotes, and anything past :data:`MAX_CHARS`.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

MAX_CHARS = 100
FALLBACK = "文件"
_DROP_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def clean_file_name(raw: str, *, percent_encoded: bool = False, fallback: str = FALLBACK) -> str:
    """``raw`` made safe to show and to send: no control or invisible characters, no folder
    part, no quotes, at most :data:`MAX_CHARS` characters (the suffix is kept). An empty
    result becomes ``fallback`` (plus the suffix, if any)."""
    name = unquote(raw or "") if percent_encoded else raw or ""
    name = unicodedata.normalize("NFC", name)
    name = "".join(
        " " if ch in "\t\r\n\x0b\x0c\x85\u2028\u2029" else ch
        for ch in name
        if ch in "\t\r\n\x0b\x0c\x85\u2028\u2029"
        or unicodedata.category(ch) not in _DROP_CATEGORIES
    )
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.replace('"', "").replace(";", " ")
    name = " ".join(name.split()).strip(". ")
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 10 or not stem:
        stem, suffix = name, ""
    if not stem:
        stem = fallback
    tail = f".{suffix}" if suffix else ""
    return stem[: MAX_CHARS - len(tail)].rstrip(". ") + tail
