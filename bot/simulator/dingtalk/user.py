"""A DingTalk user's side: text, file and card clicks, sent as the platform sends them.

Robot messages go as signed HTTP callbacks to ``callback_url`` (``mode="http"``: headers
``timestamp`` in ms and ``sign``) or as Stream CALLBACK frames (``mode="stream"``). Card clicks
go the way the card was created: Stream (``callbackType`` STREAM) or a POST to the URL
registered for its ``callbackRouteKey`` (HTTP).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from bot.dingtalk import signing
from bot.dingtalk.events import TOPIC_CARD, TOPIC_ROBOT
from bot.simulator.dingtalk import payloads

if TYPE_CHECKING:
    from bot.simulator.dingtalk.sim import DingtalkSimulator


class CardNotClickable(Exception):
    pass


class UserMixin:
    def signed_headers(self: DingtalkSimulator, ts_ms: int | None = None) -> dict[str, str]:
        ts = str(int(time.time() * 1000) if ts_ms is None else ts_ms)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "timestamp": ts,
            "sign": signing.sign(ts, self.app_secret),
        }

    async def post_signed(
        self: DingtalkSimulator,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        raw = json.dumps(body, ensure_ascii=False).encode()
        async with self.http().post(url, data=raw, headers=headers or self.signed_headers()) as r:
            answer = (r.status, await r.text())
        self.http_callbacks.append(answer)
        return answer

    async def _robot(self: DingtalkSimulator, body: dict[str, Any]) -> str | tuple[int, str]:
        if self.mode == "http":
            return await self.post_signed(self.callback_url, body)
        return await self.push("CALLBACK", TOPIC_ROBOT, body)

    def _body(self: DingtalkSimulator, user: str, msgtype: str, **kw: Any) -> dict[str, Any]:
        return payloads.robot_message(
            user_id=user,
            nick=kw.pop("nick", None) or f"用户{user}",
            robot_code=self.robot_code,
            corp_id=self.corp_id,
            msgtype=msgtype,
            base_url=self.base_url,
            **kw,
        )

    async def send_text(
        self: DingtalkSimulator, user: str, text: str, *, group: bool = False
    ) -> str | tuple[int, str]:
        """The user writes ``text`` to the robot; a messageId (stream) or (status, body) (http)."""
        return await self._robot(self._body(user, "text", text=text, group=group))

    async def send_file(
        self: DingtalkSimulator, user: str, name: str, data: bytes
    ) -> str | tuple[int, str]:
        code = secrets.token_urlsafe(48)
        self._download_codes[code] = (name, data)
        return await self._robot(self._body(user, "file", download_code=code, file_name=name))

    async def click(
        self: DingtalkSimulator, user: str, out_track_id: str, action: str
    ) -> str | tuple[int, str]:
        """The user clicks the card button whose callback params carry ``action``."""
        inst = self.cards.get(out_track_id)
        if inst is None or user not in inst.users:
            raise CardNotClickable(f"{user} has no card {out_track_id}")
        button = self.template.button(action)
        if button is None:
            raise CardNotClickable(f"the template has no button for {action!r}")
        if inst.data.get("buttons_visible", "true") == "false":
            raise CardNotClickable("the card's buttons are hidden")
        body = payloads.card_callback(
            user_id=user,
            corp_id=self.corp_id,
            out_track_id=out_track_id,
            action_id=button.id,
            params=button.params,
        )
        if inst.callback_type == "HTTP":
            return await self.post_signed(self.callback_routes[inst.route_key], body)
        return await self.push("CALLBACK", TOPIC_CARD, body)
