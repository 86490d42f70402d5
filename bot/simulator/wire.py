"""WeCom's callback wire format, from the platform's side.

The platform signs and encrypts every callback it POSTs to an app (``<xml><ToUserName/>
<Encrypt/><AgentID/></xml>`` with ``msg_signature``, ``timestamp``, ``nonce`` in the query) and
reads the app's passive reply (``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``).
The AES part is wechatpy's (``wechatpy.enterprise.crypto``); the XML is built here.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

import xmltodict
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

_NONCE_CHARS = string.ascii_letters + string.digits


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: sha1 of the sorted token, timestamp, nonce and ciphertext."""
    parts = sorted([token, timestamp, nonce, encrypt])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_CHARS) for _ in range(10))


def cdata(value: str) -> str:
    # A CDATA section cannot hold "]]>": split it as the platform's XML writers do.
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def plain_xml(fields: list[tuple[str, Any]]) -> str:
    """``<xml>`` with one element per field; ints bare, strings in CDATA (as WeCom sends them)."""
    out = ["<xml>"]
    for name, value in fields:
        body = str(value) if isinstance(value, int) else cdata(value)
        out.append(f"<{name}>{body}</{name}>")
    out.append("</xml>")
    return "".join(out)


class Sealer:
    """Encrypts callbacks and opens passive replies with an app's token, AES key and corp id."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        self.token = token
        self.corp_id = corp_id
        self._crypto = WeChatCrypto(token, encoding_aes_key, corp_id)
        self._key = self._crypto.key

    def encrypt(self, plaintext: str) -> str:
        raw = PrpCrypto(self._key).encrypt(plaintext, self.corp_id)
        return raw.decode() if isinstance(raw, bytes) else raw

    def seal(
        self, plaintext: str, agent_id: int, timestamp: str, nonce: str
    ) -> tuple[str, dict[str, str]]:
        """The POST body and query parameters of one callback."""
        encrypt = self.encrypt(plaintext)
        body = (  # the field order of the platform's documentation
            f"<xml><ToUserName>{cdata(self.corp_id)}</ToUserName>"
            f"<AgentID>{cdata(str(agent_id))}</AgentID>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        )
        query = {
            "msg_signature": signature(self.token, timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return body, query

    def echo(self, echostr_plain: str, timestamp: str, nonce: str) -> dict[str, str]:
        """Query parameters of the URL-verification GET."""
        encrypt = self.encrypt(echostr_plain)
        return {
            "msg_signature": signature(self.token, timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": encrypt,
        }

    def open_reply(self, body: str) -> str:
        """Verify and decrypt an app's passive reply envelope; raise ProtocolError if bad."""
        try:
            env = xmltodict.parse(body)["xml"]
        except Exception as exc:
            raise ProtocolError(f"passive reply is not XML: {body[:200]!r}") from exc
        for key in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce"):
            if not env.get(key):
                raise ProtocolError(f"passive reply envelope lacks <{key}>")
        expected = signature(self.token, str(env["TimeStamp"]), str(env["Nonce"]), env["Encrypt"])
        if expected != env["MsgSignature"]:
            raise ProtocolError("passive reply has a wrong MsgSignature")
        try:
            return self._crypto.decrypt_message(
                env, env["MsgSignature"], str(env["TimeStamp"]), str(env["Nonce"])
            )
        except Exception as exc:
            raise ProtocolError(f"passive reply does not decrypt: {exc!r}") from exc


class ProtocolError(Exception):
    """The app answered something the real platform would not accept."""


@dataclass
class PassiveReply:
    """A decrypted passive reply, as the platform reads it."""

    msg_type: str
    to_user: str
    from_user: str
    xml: str
    content: str = ""  # text
    replace_name: str = ""  # update_button
    card: dict[str, Any] | None = None  # update_template_card (raw fields)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.content


def parse_reply(xml: str) -> PassiveReply:
    try:
        data = xmltodict.parse(xml)["xml"]
    except Exception as exc:
        raise ProtocolError(f"passive reply plaintext is not XML: {xml[:200]!r}") from exc
    msg_type = str(data.get("MsgType") or "")
    if not msg_type:
        raise ProtocolError("passive reply has no MsgType")
    reply = PassiveReply(
        msg_type=msg_type,
        to_user=str(data.get("ToUserName") or ""),
        from_user=str(data.get("FromUserName") or ""),
        xml=xml,
        fields=dict(data),
    )
    if msg_type == "text":
        reply.content = str(data.get("Content") or "")
    elif msg_type == "update_button":
        button = data.get("Button") or {}
        reply.replace_name = str(button.get("ReplaceName") or "")
        if not reply.replace_name:
            raise ProtocolError("update_button reply without Button/ReplaceName")
    elif msg_type == "update_template_card":
        reply.card = dict(data.get("TemplateCard") or {})
    return reply
