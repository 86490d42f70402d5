"""Bodies the platform sends: robot messages, card clicks, Stream frames."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any


def robot_message(
    *,
    user_id: str,
    nick: str,
    robot_code: str,
    corp_id: str,
    msgtype: str,
    text: str = "",
    download_code: str = "",
    file_name: str = "",
    group: bool = False,
    base_url: str = "",
) -> dict[str, Any]:
    """A robot message callback body as https://open.dingtalk.com/document/orgapp/receive-message."""
    now = int(time.time() * 1000)
    body: dict[str, Any] = {
        "conversationId": "cid" + secrets.token_urlsafe(16) + "==",
        "atUsers": [],
        "chatbotCorpId": corp_id,
        "chatbotUserId": "$:LWCP_v1:$" + secrets.token_urlsafe(24),
        "msgId": "msg" + secrets.token_urlsafe(18) + "==",
        "senderNick": nick,
        "isAdmin": False,
        "senderStaffId": user_id,
        "sessionWebhookExpiredTime": now + 90 * 60 * 1000,
        "createAt": now,
        "senderCorpId": corp_id,
        "conversationType": "2" if group else "1",
        "senderId": "$:LWCP_v1:$" + secrets.token_urlsafe(24),
        "sessionWebhook": f"{base_url}/robot/sendBySession?session={secrets.token_hex(16)}",
        "robotCode": robot_code,
        "msgtype": msgtype,
    }
    if group:
        body["conversationTitle"] = "测试群"
        body["isInAtList"] = True
    if msgtype == "text":
        body["text"] = {"content": text}
    elif msgtype == "file":
        body["content"] = {
            "spaceId": str(secrets.randbelow(10**11)),
            "fileName": file_name,
            "downloadCode": download_code,
            "fileId": str(secrets.randbelow(10**11)),
        }
    elif msgtype == "picture":
        body["content"] = {"downloadCode": download_code, "pictureDownloadCode": download_code}
    return body


def card_callback(
    *, user_id: str, corp_id: str, out_track_id: str, action_id: str, params: dict[str, Any]
) -> dict[str, Any]:
    """A card click as delivered on topic /v1.0/card/instances/callback (or to the HTTP route)."""
    return {
        "extension": json.dumps({}),
        "corpId": corp_id,
        "type": "actionCallback",
        "userId": user_id,
        "userIdType": 1,
        "spaceType": "IM_ROBOT",
        "spaceId": user_id,
        "outTrackId": out_track_id,
        "content": json.dumps(
            {"cardPrivateData": {"actionIds": [action_id], "params": params}}, ensure_ascii=False
        ),
    }


def new_message_id() -> str:
    return f"{secrets.token_hex(4)}_{secrets.randbelow(999)}_{secrets.token_hex(5)}_{secrets.token_hex(2)}"


def frame(
    ftype: str, topic: str, data: dict[str, Any], *, app_id: str = "", message_id: str = ""
) -> dict[str, Any]:
    headers: dict[str, Any] = {
        "contentType": "application/json",
        "messageId": message_id or new_message_id(),
        "time": str(int(time.time() * 1000)),
        "topic": topic,
    }
    if app_id:
        headers["appId"] = app_id
    return {
        "specVersion": "1.0",
        "type": ftype,
        "headers": headers,
        "data": json.dumps(data, ensure_ascii=False),
    }
