"""Neutral cards on DingTalk: the ``outTrackId`` of a card, its template variables, its buttons.

- **outTrackId.** ``<task_id>.<hmac>``: the neutral card's ``task_id`` (unique per card copy)
  and the first 20 hex digits of HMAC-SHA256(``server.secret_key``, task_id). Unguessable (a
  click or update needs the key), the same on every resend of a row (a resend cannot make a
  second card), and found again from the task_id alone when an update comes (nothing to look
  up); a click's outTrackId is checked against its HMAC before anything runs.
- **Buttons.** The template's buttons carry only ``{"action": approve|return|details}``; the
  neutral card's button keys (``appr:approve:<step>`` ...) are kept in Redis under the
  outTrackId when the card is sent (90 days), so a click becomes the same ``card_action`` event
  a WeCom click is.
- **Text cards.** Without ``dingtalk.card_template_id`` a card goes as markdown text: the
  approver decides with the chat commands (通过 N / 退回 N 原因 after 待审核).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from services.messages import Card, CardUpdate
from storage.redis import keys

BUTTONS_TTL_SECONDS = 90 * 24 * 3600
ACTION_OF_KEY = {"approve": "approve", "return": "return", "detail": "details"}
TEXT_CARD_HINT = "请回复「待审核」查看编号，再回复「通过 编号」或「退回 编号 原因」。"


def _mac(secret: str, task_id: str) -> str:
    return hmac.new(secret.encode(), task_id.encode(), hashlib.sha256).hexdigest()[:20]


def out_track_id(secret: str, task_id: str) -> str:
    return f"{task_id}.{_mac(secret, task_id)}"


def task_id_of(secret: str, otid: str) -> str | None:
    """The task_id of one of our outTrackIds, or None (forged, or not ours)."""
    task_id, _, mac = otid.rpartition(".")
    if not task_id or not hmac.compare_digest(mac, _mac(secret, task_id)):
        return None
    return task_id


def _lines_markdown(card: Card) -> str:
    return "\n\n".join(f"**{label}**：{value}" for label, value in card.lines)


def card_data(card: Card) -> dict[str, Any]:
    """The template variables (``bot/dingtalk/card_template.json``) of a pending card."""
    return {
        "title": card.title,
        "description": card.description,
        "lines": _lines_markdown(card),
        "quote": card.quote,
        "status_text": "",
        "buttons_visible": bool(card.buttons),
    }


def update_data(upd: CardUpdate) -> dict[str, Any]:
    """The variables an update changes: the whole card when replaced, else the status."""
    data = card_data(upd.card) if upd.card is not None else {}
    data["status_text"] = upd.replace_text
    data["buttons_visible"] = False
    return data


def text_card(card: Card) -> tuple[str, str]:
    """(title, markdown) of a card sent as text, for an app without a card template."""
    parts = [f"### {card.title}", card.description, _lines_markdown(card)]
    if card.quote:
        parts.append(f"> {card.quote}")
    if card.buttons:
        parts.append(TEXT_CARD_HINT)
    return card.title, "\n\n".join(p for p in parts if p)


async def remember_buttons(redis: Any, otid: str, card: Card) -> None:
    mapping = {}
    for b in card.buttons:
        action = b.key.split(":")[1] if b.key.count(":") >= 2 else b.key
        mapping[ACTION_OF_KEY.get(action, action)] = b.key
    body = json.dumps({"task_id": card.task_id, "keys": mapping})
    await redis.set(keys.build("dtcard", otid), body, ex=BUTTONS_TTL_SECONDS)


async def button_key(redis: Any, otid: str, action: str) -> str:
    """The neutral button key of ``action`` on card ``otid`` ("" when unknown)."""
    raw = await redis.get(keys.build("dtcard", otid))
    if not raw:
        return ""
    try:
        return str(json.loads(raw).get("keys", {}).get(action) or "")
    except ValueError:
        return ""
