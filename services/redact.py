"""One home for keeping secrets and personal numbers out of every text that is logged or stored.

:func:`scrub` is the one scrubber: the log formatter runs every line through it (third-party
lines too), the outbox runs every ``last_error`` through it, the WeCom client its error texts,
and the CLI its crash output (``services.validators.mask_sensitive`` = ``scrub`` + control
characters shown). It removes

- values after secret-looking names: ``corpsecret=``, ``access_token=``, ``secret_key:``,
  ``appSecret": "``, ``EncodingAESKey=``, ``ticket=``, ``password=`` …, and ``Authorization``
  headers; a password inside a URL (``postgresql://user:***@host``);
- the values themselves wherever they appear, once :func:`remember_settings` (the CLI, the demo
  and test stacks) or :func:`remember_secrets` (the WeCom client) has been told them;
- full ID numbers and mobiles, masked as DESIGN.md says: ``3204**********123X``, ``139****5678``.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_MIN_SECRET_CHARS = 6

_known: set[str] = set()

_NAME = (
    r"corp_?secret|app_?secret|client_?secret|secret_?key|secret|access[_-]?token|"
    r"encoding_?aes_?key|aes_?key|ticket|password|passwd"
)
_Q = r"(?:\\?[\"'])?"  # an optional quote, maybe JSON-escaped
_KV_RE = re.compile(rf"(?i)((?:{_NAME}){_Q}\s*[=:]\s*{_Q})([^\s&\"'\\,;}}\]<>)]+)")
_AUTH_RE = re.compile(
    rf"(?i)(authorization{_Q}\s*[=:]\s*{_Q}(?:bearer\s+|basic\s+|token\s+)?)([^\s\"'\\,;}}]+)"
)
_URL_PASSWORD_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)([^@\s/]+)(@)")
ID_IN_TEXT_RE = re.compile(r"(?<![0-9])([1-9][0-9]{5})([0-9]{8})([0-9]{3}[0-9Xx])(?![0-9])")
MOBILE_IN_TEXT_RE = re.compile(r"(?<![0-9])(1[3-9][0-9])([0-9]{4})([0-9]{4})(?![0-9])")


def mask_id_number(value: str) -> str:
    """``3204**********123X``: the first four and the last four characters."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_mobile(value: str) -> str:
    """``139****5678``."""
    return value[:3] + "****" + value[-4:] if len(value) == 11 else "*" * len(value)


def remember_secrets(*values: str | None) -> None:
    """Scrub these values wherever they appear from now on (this process)."""
    for v in values:
        if v and len(v) >= _MIN_SECRET_CHARS:
            _known.add(v)


def remember_settings(settings: Any) -> None:
    """Remember every secret of ``settings``: the H5 key, the WeCom app's secret, token and
    EncodingAESKey, the DingTalk app secret."""
    wanted = (
        ("server", "secret_key"),
        ("wecom", "secret"),
        ("wecom", "token"),
        ("wecom", "encoding_aes_key"),
        ("dingtalk", "app_secret"),
    )
    for section, key in wanted:
        remember_secrets(getattr(getattr(settings, section, None), key, None))


def scrub(text: str, *secrets: str) -> str:
    """``text`` without secrets (named, remembered or given) and with ID numbers and mobiles
    masked: what may be logged or stored as an error."""
    if not text:
        return text
    for s in (*secrets, *sorted(_known, key=len, reverse=True)):
        if s and len(s) >= _MIN_SECRET_CHARS and s in text:
            text = text.replace(s, MASK)
    text = _KV_RE.sub(lambda m: m[1] + MASK, text)
    text = _AUTH_RE.sub(lambda m: m[1] + MASK, text)
    text = _URL_PASSWORD_RE.sub(lambda m: m[1] + MASK + m[3], text)
    text = ID_IN_TEXT_RE.sub(lambda m: mask_id_number(m[0]), text)
    return MOBILE_IN_TEXT_RE.sub(lambda m: mask_mobile(m[0]), text)
