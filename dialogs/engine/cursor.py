"""The cursor: where one user stands, as stored in Redis, and its schema migrations.

One Redis string ``uc:cursor:<platform>:<user>`` = ``"<revision>|<json>"``; the JSON body is
``{"v": version, "s": step, "d": data, "h": history, "t": token, "i": invalid}``, plus ``"l"``:
the answer of the last turn that changed the cursor, with its delivery id
(:func:`dialogs.events.reply_record`), so a re-run of that delivery gets the same answer. A body of an
older version is migrated by :data:`MIGRATIONS` when one is registered; otherwise the loader
reports ``problem="version"`` and the router resumes from the database draft.

``data`` is the flow's scratch dict as stored; flows read and write it through their typed
structure (:class:`~dialogs.engine.data.FlowData`, cached in :attr:`Cursor.views`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dialogs.engine.data import FlowData

SCHEMA_VERSION = 1
HISTORY_MAX = 12

V = TypeVar("V", bound="FlowData")


@dataclass
class Cursor:
    """Where one user stands. ``revision`` 0 means "not in Redis" (new or lost)."""

    step: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)
    version: int = SCHEMA_VERSION
    revision: int = 0
    token: str = ""  # changes each time a step is entered; binds buttons to a prompt
    invalid: int = 0  # invalid answers in a row
    last: dict[str, Any] = field(default_factory=dict)  # the last change's delivery and answer
    # set by the loader, not stored
    problem: str = ""  # "" | "missing" | "version" | "corrupt"
    roles_version: str = ""  # the who-is-who version read with the cursor (storage.changes)
    loaded: str = field(default="", repr=False, compare=False)  # the body as read (unchanged?)
    # set by the router: (delivery id, Reply) of this turn, kept as ``last`` if the cursor changed
    answer: tuple[str, Any] | None = field(default=None, repr=False, compare=False)
    # typed views of ``data`` (one per FlowData class), written back by :meth:`sync`
    views: dict[type, Any] = field(default_factory=dict, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "data" and "views" in self.__dict__:
            self.views.clear()  # new raw data: the typed views are read again from it
        object.__setattr__(self, name, value)

    @property
    def exists(self) -> bool:
        return self.revision > 0 and bool(self.step)

    # -- typed data ---------------------------------------------------------------------------

    def view(self, cls: type[V]) -> V:
        """The flow's typed data, read from ``data`` once per turn and cached."""
        v = self.views.get(cls)
        if v is None:
            v = cls.from_dict(self.data)
            self.views[cls] = v
        return v

    def sync(self) -> None:
        """Write the typed views back into ``data`` (before saving, before raw access)."""
        for v in self.views.values():
            v.write_to(self.data)

    def refresh(self) -> None:
        """``data`` changed by key: re-read every cached view in place (references stay valid)."""
        for cls, v in self.views.items():
            v.take(cls.from_dict(self.data))

    def clear_data(self) -> None:
        """Forget all scratch data (typed views included)."""
        self.data = {}
        self.views.clear()

    def remember(self) -> bool:
        """A changed cursor keeps this turn's answer (``answer``) as ``last``; True if that
        changed ``last``. Without a delivery id the previous answer is dropped."""
        from dialogs.events import reply_record

        delivery, reply = self.answer or ("", None)
        last = reply_record(delivery, reply) if delivery and reply is not None else {}
        if last == self.last:
            return False
        self.last = last
        return True

    # -- storage ------------------------------------------------------------------------------

    def dump(self) -> str:
        self.sync()
        body = {
            "v": self.version,
            "s": self.step,
            "d": self.data,
            "h": self.history,
            "t": self.token,
            "i": self.invalid,
        }
        if self.last:
            body["l"] = self.last
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(problem="missing")
        rev_s, _, body = raw.partition("|")
        try:
            rev = int(rev_s)
            d = json.loads(body)
            version = int(d.get("v", 0))
        except (ValueError, TypeError, AttributeError):
            return cls(problem="corrupt", revision=_safe_int(rev_s))
        if version != SCHEMA_VERSION:
            migrate = MIGRATIONS.get(version)
            if migrate is None:
                return cls(problem="version", revision=rev, version=version)
            d = migrate(d)
        try:
            return cls(
                step=str(d["s"]),
                data=dict(d.get("d") or {}),
                history=[str(x) for x in d.get("h") or []],
                version=SCHEMA_VERSION,
                revision=rev,
                token=str(d.get("t", "")),
                invalid=int(d.get("i", 0)),
                last=dict(d.get("l") or {}),
                loaded=body if version == SCHEMA_VERSION else "",
            )
        except (KeyError, TypeError, ValueError):
            return cls(problem="corrupt", revision=rev)


def _safe_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        return 0


# Older schema version -> function turning its body into the current one. None registered yet:
# a cursor of an unknown version restarts from the database draft, with a message.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
