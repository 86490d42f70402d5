"""The chat page for DingTalk users too: an adapter with the page's ``ChatSim`` interface.

The page (``bot/simulator/page.py``) knows one simulator. :class:`BothChats` stands in for it:
users whose id starts with ``dingtalk:`` are DingTalk users (the DingTalk simulator: signed
HTTP callbacks or Stream frames, cards created with the template), the rest WeCom users. A
DingTalk card is shown in the WeCom card's shape (title, lines, quote, buttons whose key is the
template's ``action``); a click goes to :meth:`DingtalkSimulator.click`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bot.simulator.wecom.records import ChatItem, SimUser
from bot.simulator.wecom.rules import Media

PREFIX = "dingtalk:"
BUTTON_STYLE = {"approve": 1, "return": 3, "details": 2}


def _card_shape(sim: Any, data: dict[str, str]) -> dict[str, Any]:
    lines = []
    for line in (data.get("lines") or "").split("\n\n"):
        label, _, value = line.partition("：")
        if line:
            lines.append({"keyname": label.strip("*"), "value": value})
    buttons = []
    if data.get("buttons_visible", "true") != "false":
        buttons = [
            {"text": b.text, "key": b.id, "style": BUTTON_STYLE.get(b.id, 1)}
            for b in sim.template.buttons
        ]
    return {
        "main_title": {"title": data.get("title", ""), "desc": data.get("description", "")},
        "quote_area": {"quote_text": data.get("quote", "")},
        "horizontal_content_list": lines,
        "button_list": buttons,
    }


class DingtalkChat:
    """The DingTalk side of the page."""

    def __init__(self, sim: Any, directory: Callable[[], Awaitable[list[SimUser]]]) -> None:
        self.sim = sim
        self.directory = directory
        self.sent: list[tuple[float, str, str, str]] = []  # (when, user, kind, text)
        self._at: dict[int, float] = {}  # received seq -> when (the simulator keeps no time)
        receive = sim._receive

        def stamped(**kw: Any) -> Any:
            r = receive(**kw)
            self._at[r.seq] = time.monotonic()
            return r

        sim._receive = stamped

    @property
    def rev(self) -> int:
        return (
            len(self.sim.received)
            + len(self.sent)
            + sum(c.updates for c in self.sim.cards.values())
        )

    def transcript(self, user: str) -> list[ChatItem]:
        items: list[tuple[float, ChatItem]] = []
        for order, u, kind, text in self.sent:
            if u == user:
                items.append((order, ChatItem(0, user, "user", kind, text=text, file_name=text)))
        for r in self.sim.received:
            if r.user != user:
                continue
            if r.kind == "card" and r.out_track_id in self.sim.cards:
                data = self.sim.cards[r.out_track_id].data
                item = ChatItem(
                    0, user, "app", "card", via="active", task_id=r.out_track_id,
                    card=_card_shape(self.sim, data),
                    replace_name=data.get("status_text", "")
                    if data.get("buttons_visible") == "false" else "",
                )  # fmt: skip
            elif r.kind == "file":
                name = str(r.param.get("fileName") or "file")
                size = len(r.file_bytes or b"")
                item = ChatItem(0, user, "app", "file", via="active", file_name=name,
                                media_id=f"dt{r.seq}", size=size)  # fmt: skip
            else:
                item = ChatItem(0, user, "app", "text", via="active", text=r.text)
            items.append((self._at.get(r.seq, 0.0), item))
        items.sort(key=lambda x: x[0])
        out = []
        for i, (_, item) in enumerate(items, start=1):
            item.seq = i
            out.append(item)
        return out

    def media(self, media_id: str) -> Media | None:
        for r in self.sim.received:
            if f"dt{r.seq}" == media_id and r.file_bytes is not None:
                name = str(r.param.get("fileName") or "file")
                return Media(media_id, name, r.file_bytes, "application/octet-stream", 0.0)
        return None

    def _note(self, user: str, kind: str, text: str) -> None:
        self.sent.append((time.monotonic(), user, kind, text))

    async def send_text(self, user: str, content: str) -> None:
        self._note(user, "text", content)
        await self.sim.send_text(user, content)

    async def send_file(self, user: str, name: str, data: bytes) -> None:
        self._note(user, "file", name)
        await self.sim.send_file(user, name, data)

    async def click_button(self, user: str, task_id: str, key: str) -> None:
        await self.sim.click(user, task_id, key)


class BothChats:
    """The page's simulator: WeCom users as they are, ``dingtalk:<id>`` users on DingTalk."""

    def __init__(self, wecom: Any, dingtalk: DingtalkChat) -> None:
        self.wecom = wecom
        self.dingtalk = dingtalk
        self.menu = wecom.menu
        self.agent_id = wecom.agent_id

    @property
    def rev(self) -> int:
        return self.wecom.rev * 100_000 + self.dingtalk.rev

    async def wait_change(self, rev: int, wait: float) -> int:
        for _ in range(max(1, int(wait / 0.2))):
            if self.rev != rev:
                break
            await asyncio.sleep(0.2)
        return self.rev

    async def list_directory(self) -> list[SimUser]:
        users = list(await self.wecom.list_directory())
        for u in await self.dingtalk.directory():
            users.append(SimUser(PREFIX + u.user_id, u.name, u.unit, f"{u.role} · 钉钉"))
        return users

    def _split(self, user: str) -> tuple[Any, str]:
        if user.startswith(PREFIX):
            return self.dingtalk, user[len(PREFIX) :]
        return self.wecom, user

    def transcript(self, user: str) -> list[ChatItem]:
        side, uid = self._split(user)
        return side.transcript(uid)

    def media(self, media_id: str) -> Media | None:
        if media_id.startswith("dt"):
            found = self.dingtalk.media(media_id)
            if found is not None:
                return found
        return self.wecom.media(media_id)

    async def send_text(self, user: str, content: str) -> Any:
        side, uid = self._split(user)
        return await side.send_text(uid, content)

    async def send_file(self, user: str, name: str, data: bytes) -> Any:
        side, uid = self._split(user)
        return await side.send_file(uid, name, data)

    async def click_button(self, user: str, task_id: str, key: str) -> Any:
        side, uid = self._split(user)
        return await side.click_button(uid, task_id, key)

    async def click_menu(self, user: str, key: str) -> Any:
        side, uid = self._split(user)
        if side is self.dingtalk:  # no app menu on a DingTalk robot: say the menu's word
            text = next((t for t, k in self.menu if k == key), key)
            return await side.send_text(uid, text)
        return await side.click_menu(uid, key)

    async def enter_agent(self, user: str) -> Any:
        side, uid = self._split(user)
        if side is self.dingtalk:
            return None
        return await side.enter_agent(uid)
