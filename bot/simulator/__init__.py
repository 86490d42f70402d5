"""A faithful WeCom simulator for the demo and the tests (see ``server.py``)."""

from bot.simulator.server import (
    ApiCall,
    CallbackRejected,
    CallbackResult,
    CallbackTimeout,
    ChatItem,
    Dropped,
    SimClock,
    SimUser,
    WecomSimulator,
)
from bot.simulator.wire import PassiveReply, ProtocolError

__all__ = [
    "ApiCall",
    "CallbackRejected",
    "CallbackResult",
    "CallbackTimeout",
    "ChatItem",
    "Dropped",
    "PassiveReply",
    "ProtocolError",
    "SimClock",
    "SimUser",
    "WecomSimulator",
]
