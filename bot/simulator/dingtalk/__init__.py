"""A fake DingTalk open platform (api.dingtalk.com + oapi.dingtalk.com + the Stream gateway).

``DingtalkSimulator(...).add_routes(app)`` mounts it into an aiohttp app (the WeCom simulator's
app can take it later: its routes live under ``/v1.0/``, ``/media/`` and ``/_sim/dingtalk/``,
none of which WeCom uses); ``start()`` serves it alone on a free port.
"""

from bot.simulator.dingtalk.sim import ApiCall, DingtalkSimulator, Received

__all__ = ["ApiCall", "DingtalkSimulator", "Received"]
