"""Draining on SIGTERM (issue 15 point 5): requests in flight and background work finish first.

aiohttp's own shutdown ignores whatever a client sends once it has begun, so a request still
receiving its body (an upload over a slow network, a callback in several TCP segments) would be
cut off. :class:`Inflight` counts the requests being handled; ``serve`` stops listening, waits
until none is left (within ``server.drain_timeout_seconds``), and only then lets aiohttp close
the connections and run the apps' clean-ups, which wait for the dialog turns still running in
the background (:func:`drain_tasks`) within what is left of the same time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.logs import log

logger = logging.getLogger("unioncard.drain")


class Inflight:
    """Requests being handled by this app, and the drain's deadline once it has begun."""

    def __init__(self) -> None:
        self.count = 0
        self.deadline: float | None = None  # loop time; set when draining
        self._idle = asyncio.Event()
        self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.count += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self.deadline is not None:  # draining: no further request on this connection
                response.force_close()
            return response
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def drain(self, seconds: float) -> None:
        """Wait until no request is being handled, at most ``seconds`` from now."""
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + seconds
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            log(logger, "drain.timeout", level=logging.WARNING, what="requests", left=self.count)

    def left(self, default: float) -> float:
        """Seconds left of the drain (``default`` when not draining)."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


INFLIGHT_KEY = web.AppKey("inflight", Inflight)


def drain_left(app: web.Application, default: float) -> float:
    inflight = app.get(INFLIGHT_KEY)
    return default if inflight is None else inflight.left(default)


async def drain_tasks(tasks: set[asyncio.Task[Any]], seconds: float, what: str) -> int:
    """Wait until ``tasks`` (a live set: tasks started meanwhile count too) are done, at most
    ``seconds``; returns how many are still running then (logged; not cancelled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while pending := [t for t in tasks if not t.done()]:
        left = deadline - loop.time()
        if left <= 0:
            log(logger, "drain.timeout", level=logging.WARNING, what=what, left=len(pending))
            return len(pending)
        await asyncio.wait(pending, timeout=left)
    return 0
