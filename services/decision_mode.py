"""Whether a decision is made singly (a card click, 通过 3) or in bulk (通过 1-5, 全部通过).

:func:`services.approvals.decide` writes :func:`current` into its audit row as ``mode``; the
bulk path (:mod:`services.bulk`) runs its decisions inside ``with decision_mode.bulk():``.
A context variable, so concurrent turns of other users keep their own mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

SINGLE = "single"
BULK = "bulk"

_mode: ContextVar[str] = ContextVar("decision_mode", default=SINGLE)


def current() -> str:
    return _mode.get()


@contextmanager
def using(mode: str) -> Iterator[None]:
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def bulk() -> AbstractContextManager[None]:
    return using(BULK)
