"""Structured logging: one JSON object per line.

``log(logger, "event.name", key=value, ...)`` writes ``{"ts":..., "level":..., "logger":...,
"event": "event.name", "key": value, ...}``. Never log a full ID number or mobile: mask first
(``services.validators``). As a last line of defence every formatted line, third-party ones
included, goes through ``services.redact.scrub`` (secrets removed, ID numbers and mobiles masked).

Levels: ``log.level`` applies to our own loggers (:data:`OWN_LOGGERS`). Third-party loggers
(aiosqlite, sqlalchemy, asyncpg, aiohttp, asyncio, redis, …) stay at INFO even at DEBUG, because
at DEBUG they write every SQL statement's parameters or every request; name them in
``log.debug_loggers`` (``UNIONCARD__LOG__DEBUG_LOGGERS='["aiosqlite"]'``) to see their DEBUG lines.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from services.redact import scrub
from storage.request_id import REQUEST_ID

OWN_LOGGERS = ("unioncard", "bot", "dialogs", "services", "storage")
_named_debug: set[str] = set()

# one id for every line of one callback, its jobs and its outbox rows (tasks inherit it);
# REQUEST_ID lives in storage.request_id, so an outbox row takes it wherever it is written
__all__ = ["REQUEST_ID", "JsonLineFormatter", "log", "new_request_id", "setup_logging"]


_base_factory = logging.getLogRecordFactory()


def _record_with_rid(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.rid = REQUEST_ID.get()  # taken when the line is made, in its task's context
    return record


if not getattr(_base_factory, "_unioncard", False):
    _record_with_rid._unioncard = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(_record_with_rid)


_RID_PREFIX = uuid.uuid4().hex[:10]  # per process; then a counter (no system call per request)
_rid_seq = itertools.count()


def _new_rid_prefix() -> None:
    global _RID_PREFIX, _rid_seq
    _RID_PREFIX, _rid_seq = uuid.uuid4().hex[:10], itertools.count()


os.register_at_fork(after_in_child=_new_rid_prefix)  # forked children: ids of their own


def new_request_id(rid: str = "") -> str:
    """Set (and return) the request id of what runs from here: ``rid`` or a new one."""
    rid = rid or f"{_RID_PREFIX}{next(_rid_seq):06x}"
    REQUEST_ID.set(rid)
    return rid


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        if rid := getattr(record, "rid", ""):
            data["rid"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            data["trace"] = self.formatException(record.exc_info).replace("\n", "\\n")
        return scrub(json.dumps(data, ensure_ascii=False, default=str))


def setup_logging(level: str = "INFO", *, debug_loggers: Iterable[str] = ()) -> None:
    """Route every logger to stderr as JSON lines (idempotent). ``level`` is for our own
    loggers; third-party ones get at most INFO's detail unless named in ``debug_loggers``."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_unioncard", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler._unioncard = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    numeric = logging.getLevelName(level) if isinstance(level, str) else int(level)
    root.setLevel(max(numeric, logging.INFO))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)
    for name in _named_debug - set(debug_loggers):
        logging.getLogger(name).setLevel(logging.NOTSET)
    _named_debug.clear()
    for name in debug_loggers:
        if name.strip():
            logging.getLogger(name.strip()).setLevel(logging.DEBUG)
            _named_debug.add(name.strip())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def log(logger: logging.Logger, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line: ``event`` plus ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
