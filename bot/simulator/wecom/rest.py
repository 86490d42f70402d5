"""The platform's REST API, as the app calls it: the handlers under ``/cgi-bin/``.

``gettoken``, ``message/send`` (text, file, template_card), ``message/update_template_card``,
``media/upload`` and ``media/get``; anything else answers 404. Each handler checks the token and
the injected faults (``rules.PlatformState``), applies the platform's rules, delivers into the
records and answers with the platform's JSON (errors with its ``errmsg, hint, ...`` text).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from bot.simulator.wecom.records import ApiCall, Dropped, Records
from bot.simulator.wecom.rules import (
    ERRMSG,
    MEDIA_LIMITS,
    MEDIA_SIZE_ERR,
    MEDIA_TTL,
    RESPONSE_CODE_TTL,
    TASK_ID_RE,
    TEXT_LIMIT,
    TOKEN_TTL,
    PlatformState,
    Task,
    as_int,
    card_problem,
)


class RestApi(PlatformState, Records):
    """The REST side of ``WecomSimulator`` (a mixin)."""

    corp_id: str
    agent_id: int
    secret: str

    def add_rest_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/cgi-bin/gettoken", self._h_gettoken)
        r.add_post("/cgi-bin/message/send", self._h_send)
        r.add_post("/cgi-bin/message/update_template_card", self._h_update_card)
        r.add_post("/cgi-bin/media/upload", self._h_media_upload)
        r.add_get("/cgi-bin/media/get", self._h_media_get)
        from bot.simulator.oauth import add_oauth_routes  # the workbench's sign-in

        add_oauth_routes(app, self)
        r.add_route("*", "/cgi-bin/{tail:.*}", self._h_unknown)

    # ------------------------------------------------------------------ REST helpers

    def _err(self, code: int, request: web.Request, detail: str = "") -> dict[str, Any]:
        msg = detail or ERRMSG.get(code, "error")
        hint = f"[{int(time.time())}_{secrets.token_hex(8)}]"
        peer = request.remote or "127.0.0.1"
        more = f"https://open.work.weixin.qq.com/devtool/query?e={code}"
        return {
            "errcode": code,
            "errmsg": f"{msg}, hint: {hint}, from ip: {peer}, more info at {more}",
        }

    def _record(
        self, request: web.Request, path: str, body: Any, response: dict[str, Any]
    ) -> web.Response:
        self.calls.append(
            ApiCall(
                at=self.clock.now(),
                method=request.method,
                path=path,
                query=dict(request.query),
                body=body,
                errcode=int(response.get("errcode", 0)),
                response=response,
            )
        )
        return web.json_response(response, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def _guard(self, request: web.Request, path: str) -> int:
        code = self._check_token(request.query.get("access_token"))
        if code:
            return code
        return self._fault(path) or 0

    # ------------------------------------------------------------------ REST handlers

    async def _h_unknown(self, request: web.Request) -> web.Response:
        path = request.match_info["tail"]
        return self._record(request, path, None, self._err(404, request, "api not found"))

    async def _h_gettoken(self, request: web.Request) -> web.Response:
        path = "gettoken"
        q = request.query
        if q.get("corpid") != self.corp_id:
            return self._record(request, path, None, self._err(40013, request))
        if q.get("corpsecret") != self.secret:
            return self._record(request, path, None, self._err(40001, request))
        fault = self._fault(path)
        if fault:
            return self._record(request, path, None, self._err(fault, request))
        now = self.clock.now()
        tok = self._current_token
        if tok is None or self._tokens.get(tok, 0) <= now:
            tok = secrets.token_urlsafe(96)[:128]
            self._tokens[tok] = now + TOKEN_TTL
            self._current_token = tok
        expires_in = round(self._tokens[tok] - now)
        resp = {"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": expires_in}
        return self._record(request, path, None, resp)

    async def _json_body(self, request: web.Request) -> dict[str, Any] | None:
        try:
            body = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    async def _h_send(self, request: web.Request) -> web.Response:
        path = "message/send"
        body = await self._json_body(request)
        code = self._guard(request, path)
        if code:
            return self._record(request, path, body, self._err(code, request))
        if body is None:
            return self._record(request, path, body, self._err(47001, request))
        resp = self._send(body, request)
        return self._record(request, path, body, resp)

    def _send(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        now = self.clock.now()
        if as_int(body.get("agentid")) != self.agent_id:
            return self._err(40056, request)
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "file", "template_card"):
            return self._err(40008, request)
        payload = body.get(msgtype)
        if not isinstance(payload, dict):
            return self._err(40058, request, f"missing {msgtype}")
        # content checks
        card: dict[str, Any] | None = None
        if msgtype == "text":
            content = payload.get("content")
            if not isinstance(content, str) or not content:
                return self._err(44004, request)
            if len(content.encode("utf-8")) > TEXT_LIMIT:
                return self._err(45002, request)
        elif msgtype == "file":
            media = self._media.get(str(payload.get("media_id", "")))
            if media is None or media.created + MEDIA_TTL <= now:
                return self._err(40007, request)
        else:
            card = payload
            problem = card_problem(card)
            if problem:
                return self._err(40058, request, problem)
            task_id = card.get("task_id")
            if card.get("card_type") == "button_interaction" or task_id is not None:
                if (
                    not isinstance(task_id, str)
                    or not TASK_ID_RE.fullmatch(task_id)
                    or task_id in self._tasks
                ):
                    return self._err(42014, request)
        # recipients
        wanted = [u for u in str(body.get("touser", "")).split("|") if u]
        if "@all" in wanted:
            wanted = sorted(self.users or set())
        valid = [u for u in wanted if self._reachable(u)]
        invalid = [u for u in wanted if not self._reachable(u)]
        if not valid:
            return self._err(81013, request)
        # duplicate check: the same request JSON within the interval is not delivered again
        msgid = f"msg{next(self._msgid)}"
        if as_int(body.get("enable_duplicate_check")) == 1:
            interval = as_int(body.get("duplicate_check_interval")) or 1800
            interval = min(interval, 4 * 3600)
            fp = json.dumps(body, sort_keys=True, ensure_ascii=False)
            seen = self._dup.get(fp)
            if seen is not None and seen[0] > now:
                self.duplicates.append(body)
                return {
                    "errcode": 0,
                    "errmsg": "ok",
                    "invaliduser": "|".join(u.lower() for u in invalid),
                    "msgid": seen[1],
                }
            self._dup[fp] = (now + interval, msgid)
        resp: dict[str, Any] = {
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": "|".join(u.lower() for u in invalid),
            "msgid": msgid,
        }
        if card is not None and card.get("task_id"):
            task_id = str(card["task_id"])
            self._tasks[task_id] = Task(task_id, set(valid), card, now)
            if card.get("card_type") in ("button_interaction", "vote_interaction"):
                resp["response_code"] = self._new_code(task_id, set(valid))
        for user in valid:
            reason = self._rate_exceeded(user, now)
            if reason:
                self.dropped.append(Dropped(now, user, msgtype, body, reason))
                limit = "每分钟 30 条" if reason == "per_minute" else "每小时 1000 条"
                note = f"（模拟器提示：超过{limit}的限制，平台丢弃了一条{msgtype}消息）"
                self._add(user=user, sender="system", kind="dropped", text=note)
                continue
            self._sent.setdefault(user, deque()).append(now)
            self._deliver(user, msgtype, payload, msgid)
        return resp

    def _deliver(self, user: str, msgtype: str, payload: dict[str, Any], msgid: str) -> None:
        if msgtype == "text":
            self._add(
                user=user,
                sender="app",
                kind="text",
                via="active",
                text=payload["content"],
                msgid=msgid,
            )
        elif msgtype == "file":
            media = self._media[payload["media_id"]]
            self._add(
                user=user,
                sender="app",
                kind="file",
                via="active",
                file_name=media.name,
                media_id=media.media_id,
                size=len(media.data),
                msgid=msgid,
            )
        else:
            task_id = str(payload.get("task_id", ""))
            item = self._add(
                user=user,
                sender="app",
                kind="card",
                via="active",
                card=json.loads(json.dumps(payload)),
                task_id=task_id,
                msgid=msgid,
            )
            if task_id:
                self._cards[(user, task_id)] = item

    async def _h_update_card(self, request: web.Request) -> web.Response:
        path = "message/update_template_card"
        body = await self._json_body(request)
        code = self._guard(request, path)
        if code:
            return self._record(request, path, body, self._err(code, request))
        if body is None:
            return self._record(request, path, body, self._err(47001, request))
        return self._record(request, path, body, self._update_card(body, request))

    def _update_card(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        now = self.clock.now()
        if as_int(body.get("agentid")) != self.agent_id:
            return self._err(40056, request)
        rc = self._codes.get(str(body.get("response_code", "")))
        if rc is None or rc.used or rc.created + RESPONSE_CODE_TTL <= now:
            return self._err(40058, request, "invalid response_code")
        button = body.get("button")
        new_card = body.get("template_card")
        if not (isinstance(button, dict) and button.get("replace_name")) and not isinstance(
            new_card, dict
        ):
            return self._err(40058, request, "button.replace_name or template_card required")
        task = self._tasks.get(rc.task_id)
        recipients = task.recipients if task else rc.users
        if as_int(body.get("atall")) == 1:
            targets = set(recipients)
            invalid: list[str] = []
        else:
            asked = [str(u) for u in body.get("userids") or []]
            targets = {u for u in asked if u in recipients}
            invalid = [u for u in asked if u not in recipients]
        rc.used = True
        for user in targets:
            item = self._cards.get((user, rc.task_id))
            if item is None:
                continue
            if isinstance(new_card, dict):
                item.card = json.loads(json.dumps(new_card))
                item.replace_name = ""
            else:
                item.replace_name = str(button["replace_name"])  # type: ignore[index]
        self._touch()
        return {"errcode": 0, "errmsg": "ok", "invaliduser": invalid}

    async def _h_media_upload(self, request: web.Request) -> web.Response:
        path = "media/upload"
        code = self._guard(request, path)
        if code:
            return self._record(request, path, None, self._err(code, request))
        kind = request.query.get("type", "")
        if kind not in MEDIA_LIMITS:
            return self._record(request, path, None, self._err(40005, request))
        name, data, ctype = "", b"", "application/octet-stream"
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) == "media":
                    # aiohttp's client percent-encodes non-ASCII file names
                    name = unquote(part.filename or "file")  # type: ignore[union-attr]
                    ctype = part.headers.get("Content-Type", ctype)
                    data = await part.read(decode=False)  # type: ignore[union-attr]
        body = {"file_name": name, "size": len(data), "type": kind}
        if not data:
            return self._record(request, path, body, self._err(44001, request))
        if len(data) <= 5 or len(data) > MEDIA_LIMITS[kind]:
            return self._record(request, path, body, self._err(MEDIA_SIZE_ERR[kind], request))
        media = self._store_media(name, bytes(data), ctype, kind)
        resp = {
            "errcode": 0,
            "errmsg": "ok",
            "type": kind,
            "media_id": media.media_id,
            "created_at": str(int(media.created)),
        }
        return self._record(request, path, body, resp)

    async def _h_media_get(self, request: web.Request) -> web.StreamResponse:
        path = "media/get"
        code = self._guard(request, path)
        media_id = request.query.get("media_id", "")
        if code:
            return self._record(request, path, {"media_id": media_id}, self._err(code, request))
        media = self._media.get(media_id)
        if media is None or media.created + MEDIA_TTL <= self.clock.now():
            return self._record(request, path, {"media_id": media_id}, self._err(40007, request))
        self.calls.append(
            ApiCall(self.clock.now(), "GET", path, dict(request.query), None, 0, None)
        )
        return media_response(media.name, media.data, media.content_type)


def media_response(name: str, data: bytes, content_type: str) -> web.Response:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return web.Response(
        body=data,
        headers={
            "Content-Type": content_type or "application/octet-stream",
            "Content-disposition": disposition,
        },
    )
