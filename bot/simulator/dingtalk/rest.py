"""The open API: ``api.dingtalk.com/v1.0/...`` and ``oapi.dingtalk.com/media/upload``.

Request and answer fields follow the official generated SDK (aliyun/dingtalk-sdk, python
``oauth2_1_0``, ``robot_1_0``, ``card_1_0`` models). A v1.0 error is an HTTP status with
``{"code", "message", "requestid"}``; an oapi error is HTTP 200 with ``{"errcode", "errmsg"}``.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from bot.simulator.dingtalk.sim import DingtalkSimulator

TOKEN_HEADER = "x-acs-dingtalk-access-token"
MAX_USERS = 20
MSG_KEYS = {
    "sampleText": ("content",),
    "sampleMarkdown": ("title", "text"),
    "sampleFile": ("mediaId", "fileName", "fileType"),
    "sampleLink": ("text", "title", "picUrl", "messageUrl"),
    "sampleImageMsg": ("photoURL",),
    "sampleActionCard": ("title", "text", "singleTitle", "singleURL"),
}
KIND = {"sampleText": "text", "sampleMarkdown": "markdown", "sampleFile": "file"}
FILE_LIMIT = 20 * 1024 * 1024
DOWNLOAD_URL_TTL = 3600
SPACE_RE = re.compile(r"dtv1\.card//IM_ROBOT\.([^;]+)")


def v1_error(status: int, code: str, message: str) -> web.Response:
    body = {"code": code, "message": message, "requestid": str(uuid.uuid4()).upper()}
    return web.json_response(body, status=status)


class RestMixin:
    def add_rest_routes(self: DingtalkSimulator, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1.0/oauth2/accessToken", self._h_token)
        r.add_post("/v1.0/robot/oToMessages/batchSend", self._v1(self._batch_send))
        r.add_post("/v1.0/robot/messageFiles/download", self._v1(self._file_download))
        r.add_post("/v1.0/card/instances/createAndDeliver", self._v1(self._create_and_deliver))
        r.add_put("/v1.0/card/instances", self._v1(self._update_card))
        r.add_post("/v1.0/card/callbacks/register", self._v1(self._register_callback))
        r.add_post("/media/upload", self._h_media_upload)
        r.add_get("/_sim/dingtalk/files/{key}", self._h_temp_file)

    def _record(
        self: DingtalkSimulator, request: web.Request, body: Any, resp: web.Response
    ) -> web.Response:
        from bot.simulator.dingtalk.sim import ApiCall

        try:
            answer = json.loads(resp.body) if resp.body else None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            answer = None
        self.calls.append(ApiCall(request.method, request.path, body, resp.status, answer))
        return resp

    async def _h_token(self: DingtalkSimulator, request: web.Request) -> web.Response:
        body = await _json(request)
        if body is None:
            return self._record(
                request, None, v1_error(400, "InvalidParameter", "body is not JSON")
            )
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            resp = v1_error(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
            return self._record(request, {"appKey": body.get("appKey")}, resp)
        tok = self._current_token if self.token_valid(self._current_token) else self.new_token()
        self._tokens[tok] = self.clock.now() + 7200  # fetching again renews it
        resp = web.json_response({"accessToken": tok, "expireIn": 7200})
        return self._record(request, {"appKey": body.get("appKey")}, resp)

    def _v1(self: DingtalkSimulator, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = await _json(request)
            if not self.token_valid(request.headers.get(TOKEN_HEADER)):
                resp = v1_error(
                    self.token_error_status, "InvalidAuthentication", "不合法的access_token"
                )
                return self._record(request, body, resp)
            if body is None:
                return self._record(
                    request, None, v1_error(400, "InvalidParameter", "body is not JSON")
                )
            return self._record(request, body, fn(body))

        return handler

    # -- robot -------------------------------------------------------------------------------

    def _batch_send(self: DingtalkSimulator, b: dict[str, Any]) -> web.Response:
        if b.get("robotCode") != self.robot_code:
            return v1_error(400, "resource.not.found", "robot 不存在")
        users = b.get("userIds")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) for u in users):
            return v1_error(400, "InvalidParameter.UserIds", "userIds is required")
        if len(users) > MAX_USERS:
            return v1_error(400, "InvalidParameter.UserIds", f"userIds 最多 {MAX_USERS} 个")
        key = b.get("msgKey")
        if key not in MSG_KEYS:
            return v1_error(400, "InvalidParameter.MsgKey", f"msgKey {key!r} 不支持")
        raw = b.get("msgParam")
        if not isinstance(raw, str):
            return v1_error(400, "InvalidParameter.MsgParam", "msgParam must be a JSON string")
        try:
            param = json.loads(raw)
        except ValueError:
            return v1_error(400, "InvalidParameter.MsgParam", "msgParam is not JSON")
        if not isinstance(param, dict) or any(not param.get(f) for f in MSG_KEYS[key][:1]):
            return v1_error(400, "InvalidParameter.MsgParam", f"msgParam misses {MSG_KEYS[key][0]}")
        data = None
        if key == "sampleFile":
            media = self._media.get(str(param.get("mediaId")))
            if media is None:
                return v1_error(400, "InvalidParameter.MediaId", "mediaId 不存在或已过期")
            data = media[1]
        invalid = [u for u in users if not self.reachable(u)]
        limited = [u for u in users if u in self.flow_controlled and u not in invalid]
        for u in users:
            if u not in invalid and u not in limited:
                kind = KIND.get(key, "other")
                self._receive(user=u, kind=kind, msg_key=key, param=param, file_bytes=data)
        return web.json_response(
            {
                "processQueryKey": secrets.token_urlsafe(24),
                "invalidStaffIdList": invalid,
                "flowControlledStaffIdList": limited,
            }
        )

    def _file_download(self: DingtalkSimulator, b: dict[str, Any]) -> web.Response:
        if b.get("robotCode") != self.robot_code:
            return v1_error(400, "resource.not.found", "robot 不存在")
        found = self._download_codes.get(str(b.get("downloadCode")))
        if found is None:
            return v1_error(400, "InvalidParameter.DownloadCode", "downloadCode 无效")
        key = secrets.token_urlsafe(24)
        self._temp_files[key] = (found[0], found[1], self.clock.now() + DOWNLOAD_URL_TTL)
        return web.json_response({"downloadUrl": f"{self.base_url}/_sim/dingtalk/files/{key}"})

    async def _h_temp_file(self: DingtalkSimulator, request: web.Request) -> web.Response:
        found = self._temp_files.get(request.match_info["key"])
        if found is None or found[2] < self.clock.now():
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def _h_media_upload(self: DingtalkSimulator, request: web.Request) -> web.Response:
        tok = request.query.get("access_token", "")
        if not self.token_valid(tok):
            code = 42001 if tok in self._tokens else 40014
            resp = web.json_response({"errcode": code, "errmsg": "不合法的access_token"})
            return self._record(request, None, resp)
        kind = request.query.get("type", "")
        name, data = "", b""
        if request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                if part.name == "type" and not kind:
                    kind = (await part.text()).strip()  # type: ignore[union-attr]
                elif part.name == "media":
                    name = part.filename or ""  # type: ignore[union-attr]
                    data = await part.read()  # type: ignore[union-attr]
        info = {"type": kind, "name": name, "size": len(data)}
        if kind not in ("image", "voice", "video", "file"):
            resp = web.json_response({"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
        elif not data:
            resp = web.json_response({"errcode": 41005, "errmsg": "缺少多媒体文件数据"})
        elif len(data) > FILE_LIMIT:
            resp = web.json_response({"errcode": 40006, "errmsg": "不合法的文件大小"})
        else:
            media_id = "@lA" + secrets.token_urlsafe(30)
            self._media[media_id] = (name, data)
            resp = web.json_response(
                {
                    "errcode": 0,
                    "errmsg": "ok",
                    "media_id": media_id,
                    "created_at": int(self.clock.now() * 1000),
                    "type": kind,
                }
            )
        return self._record(request, info, resp)

    # -- cards -------------------------------------------------------------------------------

    def _card_data(self: DingtalkSimulator, b: dict[str, Any]) -> dict[str, str] | str:
        cd = b.get("cardData")
        pm = cd.get("cardParamMap") if isinstance(cd, dict) else None
        if not isinstance(pm, dict):
            return "cardData.cardParamMap is required"
        for k, v in pm.items():
            if k not in self.template.variables:
                return f"cardParamMap key {k!r} is not a variable of the template"
            if not isinstance(v, str):
                return f"cardParamMap value of {k!r} must be a string"
        return pm

    def _create_and_deliver(self: DingtalkSimulator, b: dict[str, Any]) -> web.Response:
        from bot.simulator.dingtalk.sim import CardInstance

        if b.get("cardTemplateId") != self.card_template_id:
            return v1_error(400, "InvalidParameter.CardTemplateId", "卡片模板不存在")
        otid = b.get("outTrackId")
        if not isinstance(otid, str) or not otid:
            return v1_error(400, "InvalidParameter.OutTrackId", "outTrackId is required")
        if otid in self.cards:
            return v1_error(400, "param.outTrackIdExist", "outTrackId 已存在")
        pm = self._card_data(b)
        if isinstance(pm, str):
            return v1_error(400, "InvalidParameter.CardData", pm)
        ctype = b.get("callbackType") or "STREAM"
        route = b.get("callbackRouteKey") or ""
        if ctype not in ("STREAM", "HTTP"):
            return v1_error(400, "InvalidParameter.CallbackType", "callbackType is STREAM or HTTP")
        if ctype == "HTTP" and route not in self.callback_routes:
            return v1_error(400, "InvalidParameter.CallbackRouteKey", "callbackRouteKey 未注册")
        users = SPACE_RE.findall(str(b.get("openSpaceId") or ""))
        if not users:
            return v1_error(400, "InvalidParameter.OpenSpaceId", "openSpaceId 格式错误")
        deliver = b.get("imRobotOpenDeliverModel")
        if not isinstance(deliver, dict) or deliver.get("spaceType") != "IM_ROBOT":
            return v1_error(400, "InvalidParameter.ImRobotOpenDeliverModel", "spaceType IM_ROBOT")
        if deliver.get("robotCode", self.robot_code) != self.robot_code:
            return v1_error(400, "resource.not.found", "robot 不存在")
        results = []
        inst = CardInstance(otid, self.card_template_id, set(), dict(pm), ctype, route)
        for u in users:
            ok = self.reachable(u)
            results.append(
                {
                    "spaceType": "IM_ROBOT",
                    "spaceId": u,
                    "success": ok,
                    "carrierId": secrets.token_hex(8) if ok else "",
                    "errorMsg": "" if ok else "user not found",
                }
            )
            if ok:
                inst.users.add(u)
                self._receive(user=u, kind="card", out_track_id=otid, card=inst.data)
        self.cards[otid] = inst
        return web.json_response(
            {"success": True, "result": {"outTrackId": otid, "deliverResults": results}}
        )

    def _update_card(self: DingtalkSimulator, b: dict[str, Any]) -> web.Response:
        inst = self.cards.get(str(b.get("outTrackId")))
        if inst is None:
            return v1_error(400, "InvalidParameter.OutTrackId", "卡片实例不存在")
        pm = self._card_data(b)
        if isinstance(pm, str):
            return v1_error(400, "InvalidParameter.CardData", pm)
        opts = b.get("cardUpdateOptions") or {}
        if not opts.get("updateCardDataByKey"):
            inst.data.clear()  # full replacement
        inst.data.update(pm)
        inst.updates += 1
        return web.json_response({"success": True, "result": True})

    def _register_callback(self: DingtalkSimulator, b: dict[str, Any]) -> web.Response:
        key, url = b.get("callbackRouteKey"), b.get("callbackUrl")
        if not key or not url:
            return v1_error(400, "InvalidParameter", "callbackRouteKey and callbackUrl required")
        self.callback_routes[key] = url
        secret = b.get("apiSecret") or secrets.token_urlsafe(24)
        return web.json_response(
            {"success": True, "result": {"callbackUrl": url, "apiSecret": secret}}
        )


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
