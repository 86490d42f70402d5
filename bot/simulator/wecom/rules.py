"""WeCom's platform rules and the state they act on.

The limits and error codes (``ERRMSG``), the simulator's clock, what the platform keeps between
calls (tokens, cards by ``task_id``, response codes, media, the send windows, injected
faults) and the checks that read it. ``rest`` (the API the app calls) and ``user`` (the
callbacks a user causes) both go through :class:`PlatformState`; nothing here knows HTTP.

- access tokens last 7200 s on the simulator's clock and can be revoked early
  (``expire_tokens()``): 41001 missing, 40014 unknown, 42001 expired;
- ``task_id``: ``[A-Za-z0-9_\\-@]{1,128}``, unique per app (42014);
- ``response_code``: from a card send or a click, usable once, within 72 h (40058);
- at most 30 sends a minute and 1000 an hour to one member; the excess is answered ``ok`` and
  silently not delivered (recorded in ``dropped``), as the real platform does;
- text content at most 2048 bytes (45002); files 5 B..20 MB (40006), media ids live 3 days
  (40007); ``enable_duplicate_check`` within ``duplicate_check_interval`` (default 1800 s);
- agentid must be the app's (40056); all recipients invalid gives 81013.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

TOKEN_TTL = 7200
RESPONSE_CODE_TTL = 72 * 3600
MEDIA_TTL = 3 * 24 * 3600
TEXT_LIMIT = 2048
PER_MINUTE = 30
PER_HOUR = 1000
TASK_ID_RE = re.compile(r"[A-Za-z0-9_\-@]{1,128}")
MEDIA_LIMITS = {"file": 20 * 1024 * 1024, "image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024}
MEDIA_LIMITS["video"] = 10 * 1024 * 1024
MEDIA_SIZE_ERR = {"file": 40006, "image": 40009, "voice": 40010, "video": 40011}

ERRMSG = {
    -1: "system busy",
    40001: "invalid credential",
    40005: "invalid type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40010: "invalid voice size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40058: "invalid Request Parameter",
    41001: "access_token missing",
    42001: "access_token expired",
    42014: "taskid has existed or empty or exceed max len",
    44001: "empty media data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45033: "api freq out of limit",
    47001: "data format error",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
}


class SimClock:
    """The platform's clock: real time plus an offset tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Media:
    media_id: str
    name: str
    data: bytes
    content_type: str
    created: float
    kind: str = "file"


@dataclass
class ResponseCode:
    task_id: str
    users: set[str]
    created: float
    used: bool = False


@dataclass
class Task:
    task_id: str
    recipients: set[str]
    card: dict[str, Any]
    created: float


@dataclass
class Fault:
    path: str
    errcode: int
    count: int


class PlatformState:
    """What the platform remembers, and its rules over it (a mixin of ``WecomSimulator``)."""

    users: set[str] | None
    unreachable: set[str]
    clock: SimClock

    def _init_state(self) -> None:
        self._tokens: dict[str, float] = {}  # token -> expiry (sim clock)
        self._current_token: str | None = None
        self._tasks: dict[str, Task] = {}
        self._codes: dict[str, ResponseCode] = {}
        self._media: dict[str, Media] = {}
        self._sent: dict[str, deque[float]] = {}
        self._dup: dict[str, tuple[float, str]] = {}
        self._faults: list[Fault] = []
        self._msgid = itertools.count(7_100_000_000_000_000_000 + secrets.randbelow(10**12))

    # ------------------------------------------------------------------ controls

    def expire_tokens(self) -> None:
        """Revoke every access token now (the platform may do this before 7200 s)."""
        now = self.clock.now()
        for tok in self._tokens:
            self._tokens[tok] = min(self._tokens[tok], now - 1)
        self._current_token = None

    def inject(self, path: str, errcode: int, count: int = 1) -> None:
        """Make the next ``count`` calls to ``path`` (e.g. "message/send") fail with ``errcode``."""
        self._faults.append(Fault(path, errcode, count))

    # ------------------------------------------------------------------ rules over the state

    def _fault(self, path: str) -> int | None:
        for f in self._faults:
            if f.path == path and f.count > 0:
                f.count -= 1
                return f.errcode
        return None

    def _check_token(self, tok: str | None) -> int:
        if not tok:
            return 41001
        expiry = self._tokens.get(tok)
        if expiry is None:
            return 40014
        if expiry <= self.clock.now():
            return 42001
        return 0

    def _reachable(self, user: str) -> bool:
        if user in self.unreachable:
            return False
        return self.users is None or user in self.users

    def _rate_exceeded(self, user: str, now: float) -> str:
        q = self._sent.setdefault(user, deque())
        while q and q[0] <= now - 3600:
            q.popleft()
        if sum(1 for t in q if t > now - 60) >= PER_MINUTE:
            return "per_minute"
        if len(q) >= PER_HOUR:
            return "per_hour"
        return ""

    def _new_code(self, task_id: str, users: set[str]) -> str:
        code = secrets.token_urlsafe(48)
        self._codes[code] = ResponseCode(task_id, set(users), self.clock.now())
        return code

    def _store_media(self, name: str, data: bytes, content_type: str, kind: str) -> Media:
        media_id = "3" + secrets.token_urlsafe(48)
        media = Media(media_id, name, data, content_type, self.clock.now(), kind or "file")
        self._media[media_id] = media
        return media


def as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def truncate_utf8(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode("utf-8", errors="ignore"), True


def card_problem(card: dict[str, Any]) -> str:
    """What the platform would reject in a template_card (the checks it documents)."""
    ctype = card.get("card_type")
    if ctype not in (
        "text_notice",
        "news_notice",
        "button_interaction",
        "vote_interaction",
        "multiple_interaction",
    ):
        return "invalid card_type"
    if ctype == "button_interaction":
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            return "button_list must hold 1 to 6 buttons"
        for b in buttons:
            if not isinstance(b, dict) or not b.get("text") or not b.get("key"):
                return "each button needs text and key"
            if len(str(b["key"]).encode()) > 1024:
                return "button key exceeds 1024 bytes"
        title = (card.get("main_title") or {}).get("title")
        if not title and not card.get("sub_title_text"):
            return "main_title.title or sub_title_text required"
    return ""


def card_from_xml(fields: dict[str, Any]) -> dict[str, Any]:
    """A passive update_template_card's <TemplateCard> (CamelCase XML) as card JSON."""

    def snake(name: str) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {snake(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    card = conv(fields)
    buttons = card.get("button_list")
    if isinstance(buttons, dict):  # <ButtonList><Button>..</Button></ButtonList>
        inner = buttons.get("button")
        card["button_list"] = inner if isinstance(inner, list) else [inner] if inner else []
    return card
