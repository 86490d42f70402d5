"""The request id of what runs now: a callback, the jobs it queues and the outbox rows they write.

It lives in the lowest layer so that a row written anywhere (``services``, ``bot``) takes it
without knowing of logs: ``storage.models.Outbox.request_id`` defaults to it. ``bot.logs`` sets
it per callback and job and puts it on every log line (tasks inherit it).
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str | None:
    """The request id of the running context, or None outside any request."""
    return REQUEST_ID.get() or None
