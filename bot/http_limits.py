"""Slow and oversized requests (issue 10): what the HTTP app allows a client.

- Headers: aiohttp closes a connection that is waiting for a request once its keep-alive
  timer runs out, and that timer starts when the connection is made and again after each
  answer. Set to ``server.header_timeout_seconds``, it is the time a client has to send a
  request line and headers (a half-sent request is closed; idle kept-alive connections too).
- Body: :func:`body_timeout` cuts off a request not read and answered within
  ``server.body_timeout_seconds`` (408, connection closed).
- Size: ``client_max_size`` bounds what ``read()``/``post()`` take; a declared
  ``Content-Length`` above it is refused before anything is read (413), and the H5 page counts
  what it streams (:mod:`bot.h5`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

BODY_SLACK = 256 * 1024  # form fields and multipart boundaries around a file


def max_body(settings: Any) -> int:
    return int(settings.limits.upload_bytes) + BODY_SLACK


def runner_kwargs(settings: Any) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` (every runner of the app uses them)."""
    return {"keepalive_timeout": float(settings.server.header_timeout_seconds)}


def make_runner(app: web.Application, settings: Any, **kwargs: Any) -> web.AppRunner:
    return web.AppRunner(app, **runner_kwargs(settings), **kwargs)


def body_timeout(settings: Any) -> Any:
    limit = float(settings.server.body_timeout_seconds)
    cap = max_body(settings)

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=request.content_length)
        try:
            async with asyncio.timeout(limit):
                return await handler(request)
        except TimeoutError:
            resp = web.Response(status=408, text="request timeout")
            resp.force_close()
            await resp.prepare(request)
            await resp.write_eof()
            if request.protocol is not None:  # drop the rest of the body, do not linger on it
                request.protocol.force_close()
            return resp

    return middleware


async def read_small_body(request: web.Request, limit: int) -> bytes:
    """The whole body, up to ``limit`` bytes (``limit + 1`` bytes back: too large). A body
    that arrives in several TCP segments is read to its end (one ``read(n)`` returns only
    what has arrived)."""
    content = request.content
    declared = request.content_length
    if declared is not None and declared <= limit:  # the usual case: one call
        try:
            return await content.readexactly(declared)
        except asyncio.IncompleteReadError as exc:  # the client sent less than it said
            return exc.partial
    body = await content.read(limit + 1)
    while len(body) <= limit and (more := await content.read(limit + 1 - len(body))):
        body += more
    return body
