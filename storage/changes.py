"""Who-is-who changes: a Redis version token replaced after every commit that wrote the
``operators`` or ``unions`` table, so that every process can cache who is who
(``services.roles_cache``) and drop that cache at once when it changes, in any process.

- Every process that has a Redis registers it (:func:`register`; :func:`storage.redis.connect`
  does it, and so does the command line's settings loader). From then on every database engine
  of the process is watched: any INSERT/UPDATE/DELETE on a watched table, ORM or Core, marks the
  connection (``before_cursor_execute``); its COMMIT turns the mark into "changed", a ROLLBACK
  drops it; when the connection goes back to the pool (after the commit, before the writer's
  ``async with`` block ends) the version is replaced, synchronously (writes to these tables are
  rare: imports, tree edits, applied reviews). Readers thus see the new version before the
  writer goes on.
- The version is a random token, never a counter: a Redis flush cannot bring back an old value
  that some cache still holds. A missing key is set by the first reader (the dialog engine's
  lock script).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from sqlalchemy import event

from storage.redis import keys

log = logging.getLogger(__name__)

WATCHED = frozenset({"operators", "unions"})
VERSION_KEY = keys.build("whois", "version")
_MARK = "uc_whois_dirty"
_COMMITTED = "uc_whois_committed"
_WRITE = re.compile(
    r"\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+[\"`\[]?(\w+)", re.IGNORECASE
)
_clients: dict[str, Any] = {}
_urls: dict[str, None] = {}  # registered Redis URLs, newest last (tests make many)
MAX_URLS = 4
_installed = False


def new_token() -> str:
    return secrets.token_hex(8)


def _before_execute(
    conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
) -> None:
    if statement[:1] in "SsWw":  # SELECT / WITH: the hot path returns at once
        return
    m = _WRITE.match(statement)
    if m is not None and m.group(1).lower() in WATCHED:
        conn.info[_MARK] = True


def _on_commit(conn: Any) -> None:
    if conn.info.pop(_MARK, False):
        conn.info[_COMMITTED] = True


def _on_rollback(conn: Any) -> None:
    conn.info.pop(_MARK, None)


def _checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None and record.info.pop(_COMMITTED, False):
        bump()


def bump() -> None:
    """Replace the version in every registered Redis (synchronously: called from sync hooks)."""
    import redis as sync_redis

    token = new_token()
    for url in list(_urls):
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = sync_redis.Redis.from_url(url)
        try:
            client.set(VERSION_KEY, token)
        except Exception:  # Redis down: no turn runs without it either
            log.exception("whois version bump failed")


def register(redis_url: str) -> None:
    """Bump the version in ``redis_url`` after watched commits of any engine of this process."""
    if not _installed:
        _install()
    _urls.pop(redis_url, None)
    _urls[redis_url] = None
    while len(_urls) > MAX_URLS:
        old = next(iter(_urls))
        del _urls[old]
        client = _clients.pop(old, None)
        if client is not None:
            client.close()


def _install() -> None:
    global _installed
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    event.listen(Engine, "before_cursor_execute", _before_execute)
    event.listen(Engine, "commit", _on_commit)
    event.listen(Engine, "rollback", _on_rollback)
    event.listen(Pool, "checkin", _checkin)
    _installed = True
