"""Who has no review of their own, cached in this process for the turns of users without one.

:func:`services.reviews.begin` answers ``nobody``, ``approver`` or ``not_reviewing`` from the
operators and unions tables alone (no review, cycle or clock plays a part). Those answers are kept
here per (platform, user), tagged with the who-is-who version (:mod:`storage.changes`) that the
turn read from Redis together with its lock and cursor; an entry counts only while the version is
the same. Any commit of any process that writes operators or unions replaces the version, so the
next turn of every user asks the database again (a stranger made a contact by an operators import
is answered as a contact at once).
"""

from __future__ import annotations

from typing import Any

MAX_ENTRIES = 200_000  # then the cache starts over (a city has fewer people who write)


class RolesCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.version = ""
        self.entries: dict[tuple[str, str], Any] = {}

    def get(self, version: str, platform: str, user_id: str) -> Any:
        """The cached answer, or None (unknown, or cached under another version)."""
        if not version or version != self.version:
            return None
        return self.entries.get((platform, user_id))

    def put(self, version: str, platform: str, user_id: str, entry: Any) -> None:
        if not version:
            return
        if version != self.version:  # who is who changed: everything cached before is void
            self.entries.clear()
            self.version = version
        elif len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[(platform, user_id)] = entry


cache = RolesCache()  # one per process
