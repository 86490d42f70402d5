"""The former home of the WeCom simulator, kept as an import path.

The simulator is now the package ``bot.simulator.wecom`` (rules and state, records, REST
handlers, the user side, the simulator object); import from ``bot.simulator``.
"""

from bot.simulator.wecom.records import ApiCall, CallbackResult, ChatItem, Dropped, SimUser
from bot.simulator.wecom.rest import media_response
from bot.simulator.wecom.rules import SimClock
from bot.simulator.wecom.sim import WecomSimulator
from bot.simulator.wecom.user import CallbackRejected, CallbackTimeout

__all__ = [
    "ApiCall",
    "CallbackRejected",
    "CallbackResult",
    "CallbackTimeout",
    "ChatItem",
    "Dropped",
    "SimClock",
    "SimUser",
    "WecomSimulator",
    "media_response",
]
