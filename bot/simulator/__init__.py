"""A faithful WeCom simulator for the demo and the tests.

Acting as a user (each returns the decrypted passive reply, a :class:`PassiveReply`, or None;
a non-200 answer raises :class:`CallbackRejected`)::

    await sim.send_text(user, "年审")            # reply.msg_type == "text", reply.content
    await sim.send_file(user, "名单.xlsx", data)  # a media id the app fetches with media/get
    await sim.enter_agent(user); await sim.click_menu(user, "review")
    await sim.click_button(user, task_id, key)   # reply.msg_type == "update_button"
    await sim.send_unsupported(user, "image")
    await sim.post_callback(sim.plaintext(user, fields), repeat=3, tamper=fn)  # low level
    await sim.verify_url()                       # the console's URL check (GET + echostr)

What happened::

    sim.inbox(user) / sim.transcript(user)      # ChatItem list, in order (via passive/active)
    sim.texts(user), sim.cards(user), sim.card(user, task_id), sim.files(user)
    sim.calls, sim.calls_to("message/send")     # every REST call with its errcode/response
    sim.dropped                                 # sends over 30/min or 1000/h (answered "ok")
    sim.media_bytes(media_id)

Platform controls: ``sim.clock.advance(s)``, ``sim.expire_tokens()``,
``sim.inject("message/send", -1, count=1)``, ``sim.users = {...}`` (the app's visible range,
others are invalid users), ``sim.unreachable.add(user)``. Rules and error codes:
``bot.simulator.wecom.rules``; how the package is split: ``bot.simulator.wecom``.
``bot.simulator.stack.LocalStack`` runs it with the bot; ``tests/harness.py`` wraps that.
"""

from bot.simulator.wecom.records import ApiCall, CallbackResult, ChatItem, Dropped, SimUser
from bot.simulator.wecom.rules import SimClock
from bot.simulator.wecom.sim import WecomSimulator
from bot.simulator.wecom.user import CallbackRejected, CallbackTimeout
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
