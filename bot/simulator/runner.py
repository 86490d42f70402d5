"""Serving a simulator's aiohttp application on a port (like aiohttp's ``web_runner``).

One application may carry several platforms' routes (each simulator's ``add_routes(app)``: the
WeCom API under ``/cgi-bin/`` and its chat page under ``/sim/``; DingTalk's ``/v1.0/`` and
``/_sim/dingtalk/``); :func:`serve` runs it and returns the base URL every platform's
``api_base`` then points at.
"""

from __future__ import annotations

from aiohttp import web

MAX_BODY = 64 * 1024 * 1024


def new_app() -> web.Application:
    """An empty application that takes the platforms' largest uploads."""
    return web.Application(client_max_size=MAX_BODY)


async def serve(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout: float = 2.0
) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (0: a free port); returns the runner and the base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    real_port = sock.getsockname()[1]
    return runner, f"http://{host}:{real_port}"
