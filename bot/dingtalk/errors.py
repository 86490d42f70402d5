"""Errors of the DingTalk open API, with secrets scrubbed from every message."""

from __future__ import annotations

from services.redact import scrub

__all__ = ["scrub"]


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
