"""Typed per-flow cursor data: a small dataclass per flow instead of loose dict keys.

A flow declares its fields (names = the keys stored in the cursor's ``data`` dict, so cursors
saved before the structures existed load unchanged)::

    @dataclass
    class ReviewData(FlowData):
        rid: int | None = None
        unit: str = ""

and reads/writes them with ``ReviewData.of(ctx)`` (one instance per turn, cached on the
cursor and written back when the cursor is saved). :meth:`FlowData.from_dict` is tolerant:
unknown keys are ignored, a value of the wrong type is converted when it can be (``"12"`` ->
12) and otherwise replaced by the field's default, never an error. A field at its default is
not stored (setting ``pending = None`` removes the key, as ``pop`` did).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from dialogs.engine.context import Context

_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    h = _hints_cache.get(cls)
    if h is None:
        h = _hints_cache[cls] = typing.get_type_hints(cls)
    return h


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` (int, str, bool, float, dict, list, or ``X | None``);
    raises ValueError/TypeError when it cannot be."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0])
    base = typing.get_origin(hint) or hint
    if base is int:
        if isinstance(value, bool):
            raise TypeError("bool is not an int here")
        return int(value)
    if base is float:
        return float(value)
    if base is bool:
        return bool(value)
    if base is str:
        if value is None:
            raise TypeError("None")
        return str(value)
    if base is dict:
        if not isinstance(value, dict):
            raise TypeError("not a dict")
        return value
    if base is list:
        if not isinstance(value, list):
            raise TypeError("not a list")
        return value
    return value


@dataclasses.dataclass
class FlowData:
    """Base of a flow's typed cursor data (subclasses are dataclasses)."""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                continue
            try:
                values[f.name] = _coerce(raw[f.name], hints[f.name])
            except (TypeError, ValueError, IndexError):
                pass  # unusable: the default
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what is stored)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != _default(f)
        }

    def write_to(self, data: dict[str, Any]) -> None:
        """Store the fields into ``data``; a field at its default removes its key."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == _default(f):
                data.pop(f.name, None)
            else:
                data[f.name] = value

    def take(self, other: Self) -> None:
        """Copy all fields from ``other`` (keeps this object, so held references stay valid)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(other, f.name))

    @classmethod
    def of(cls, ctx: Context) -> Self:
        """This flow's data in the current turn (read once, saved with the cursor)."""
        return ctx.cursor.view(cls)
