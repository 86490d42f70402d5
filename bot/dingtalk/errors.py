"""Errors of the DingTalk open API, with secrets scrubbed from every message."""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"(access_token=|accessToken\"?:\s*\"?|ticket=)[^&\"\s,}]+", re.I)


def scrub(text: str, *secrets: str) -> str:
    """``text`` without any of ``secrets`` nor anything that looks like a token or ticket."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "***")
    return _TOKEN_RE.sub(r"\1***", text)


class DingtalkError(Exception):
    """An API call that failed: HTTP ``status``, DingTalk ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str = "", path: str = "") -> None:
        super().__init__(f"{path}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.path = path


class TransientError(DingtalkError):
    """A network failure or a 5xx: worth retrying soon."""


class RateLimited(DingtalkError):
    """HTTP 429 or a QPS-limit code: back off."""


class ConfigurationError(DingtalkError):
    """Wrong app key/secret, robot code or template: retrying will not help."""


class FileTooLarge(DingtalkError):
    """A downloaded file is over the limit."""
