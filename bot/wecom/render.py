"""Neutral messages (``services.messages``) → WeCom wire format.

REST bodies for ``message/send`` and ``message/update_template_card``, and the plaintext XML of a
passive reply (encrypted by :mod:`bot.wecom.crypto`).
"""

from __future__ import annotations

import time
from typing import Any

from services.messages import Card, CardUpdate

TEXT_LIMIT_BYTES = 2048  # WeCom truncates text content beyond 2048 bytes
MAX_BUTTONS = 6
MAX_HORIZONTAL = 6
DUPLICATE_CHECK_SECONDS = 1800


def cdata(text: str) -> str:
    """``text`` as CDATA, with any ``]]>`` split so it cannot end the section."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


# -- passive replies (plaintext XML, encrypted by the caller) -----------------------------------


def passive_text(to_user: str, corp_id: str, text: str, now: int | None = None) -> str:
    """A passive text reply. The caller keeps ``text`` within 2048 bytes (see bot.replies.split_text)."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(corp_id)}</FromUserName>"
        f"<CreateTime>{int(time.time()) if now is None else now}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content>{cdata(text)}</Content></xml>"
    )


def passive_update_button(
    to_user: str, corp_id: str, replace_name: str, now: int | None = None
) -> str:
    """Answer a card click by turning the clicked user's buttons into ``replace_name``."""
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(corp_id)}</FromUserName>"
        f"<CreateTime>{int(time.time()) if now is None else now}</CreateTime>"
        f"<MsgType><![CDATA[update_button]]></MsgType>"
        f"<Button><ReplaceName>{cdata(replace_name)}</ReplaceName></Button></xml>"
    )


# -- REST bodies ---------------------------------------------------------------------------------


def _envelope(agent_id: int, user: str, msgtype: str, dedup: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"touser": user, "msgtype": msgtype, "agentid": agent_id}
    if dedup:
        body["enable_duplicate_check"] = 1
        body["duplicate_check_interval"] = DUPLICATE_CHECK_SECONDS
    return body


def text_body(agent_id: int, user: str, text: str) -> dict[str, Any]:
    """``message/send`` text; duplicate check on, so a resend after a crash is harmless."""
    body = _envelope(agent_id, user, "text", dedup=True)
    body["text"] = {"content": text}
    return body


def file_body(agent_id: int, user: str, media_id: str) -> dict[str, Any]:
    body = _envelope(agent_id, user, "file", dedup=True)
    body["file"] = {"media_id": media_id}
    return body


def template_card(card: Card) -> dict[str, Any]:
    """A ``button_interaction`` template card; the unique ``task_id`` makes a resend harmless."""
    tc: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": card.title},
        "task_id": card.task_id,
        "button_list": [
            {"text": b.text, "style": b.style, "key": b.key} for b in card.buttons[:MAX_BUTTONS]
        ],
    }
    if card.description:
        tc["main_title"]["desc"] = card.description
    if card.quote:
        tc["quote_area"] = {"type": 0, "quote_text": card.quote}
    lines = list(card.lines)
    if lines:
        tc["horizontal_content_list"] = [
            {"keyname": str(k), "value": str(v)} for k, v in lines[:MAX_HORIZONTAL]
        ]
        if len(lines) > MAX_HORIZONTAL:
            tc["sub_title_text"] = "\n".join(f"{k}：{v}" for k, v in lines[MAX_HORIZONTAL:])
    return tc


def card_body(agent_id: int, user: str, card: Card) -> dict[str, Any]:
    body = _envelope(agent_id, user, "template_card", dedup=False)
    body["template_card"] = template_card(card)
    return body


def update_card_body(
    agent_id: int, user: str, update: CardUpdate, response_code: str
) -> dict[str, Any]:
    """``message/update_template_card``: disable the buttons with a label, or replace the card."""
    body: dict[str, Any] = {
        "userids": [user],
        "agentid": agent_id,
        "response_code": response_code,
    }
    if update.card is not None:
        tc = template_card(update.card)
        tc["replace_text"] = update.replace_text
        body["template_card"] = tc
    else:
        body["button"] = {"replace_name": update.replace_text}
    return body
