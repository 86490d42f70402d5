"""HTTP-mode callback verification for a DingTalk robot.

DingTalk POSTs a robot message as JSON with two headers: ``timestamp`` (milliseconds since the
epoch) and ``sign`` = base64(HmacSHA256(key=app_secret, msg=timestamp + "\\n" + app_secret)).
The callback is accepted only when the sign matches and the timestamp is within one hour of our
clock (either side). The sign does not cover the body: de-duplicate on the body's ``msgId``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

WINDOW_MS = 3600 * 1000


class CallbackRejected(Exception):
    """A callback that must not be processed; ``status`` is the HTTP answer (400 or 403)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def sign(timestamp: str | int, app_secret: str) -> str:
    """The ``sign`` header DingTalk sends with ``timestamp``."""
    msg = f"{timestamp}\n{app_secret}".encode()
    digest = hmac.new(app_secret.encode(), msg, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def now_ms() -> int:
    return int(time.time() * 1000)


def verify(
    timestamp: str | None,
    signature: str | None,
    app_secret: str,
    *,
    clock_ms: Callable[[], int] = now_ms,
    window_ms: int = WINDOW_MS,
) -> None:
    """Raise :class:`CallbackRejected` unless ``signature`` and ``timestamp`` are good."""
    if not app_secret:
        raise CallbackRejected("dingtalk.app_secret is not configured", 403)
    if not timestamp or not signature:
        raise CallbackRejected("missing timestamp or sign header", 400)
    ts = timestamp.strip()
    if not ts.isdigit() or len(ts) > 16:
        raise CallbackRejected("timestamp is not a number of milliseconds", 400)
    if abs(clock_ms() - int(ts)) > window_ms:
        raise CallbackRejected("timestamp outside the allowed window", 403)
    expected = sign(ts, app_secret)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise CallbackRejected("bad sign", 403)


def verify_headers(
    headers: Mapping[str, str], app_secret: str, *, clock_ms: Callable[[], int] = now_ms
) -> None:
    """:func:`verify` with the request's headers (``timestamp``, ``sign``; any case)."""
    verify(headers.get("timestamp"), headers.get("sign"), app_secret, clock_ms=clock_ms)
