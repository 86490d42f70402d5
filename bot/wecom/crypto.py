"""WeCom callback crypto: signature, timestamp window, AES-256-CBC envelope.

Built on ``wechatpy.enterprise.crypto.WeChatCrypto`` (key derivation, the reference
implementation the tests cross-check against), but with the checks wechatpy leaves out: the
timestamp window, strict base64 and PKCS#7, the length field, and typed errors instead of raw
exceptions on garbage input. The hot path does not go through wechatpy's object and XML layers:
the envelope's ``Encrypt`` field is taken with one regular expression and the AES is done with
the same key in one call each way (DESIGN.md, performance facts).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable

from Crypto.Cipher import AES
from wechatpy.enterprise.crypto import WeChatCrypto

WINDOW_SECONDS = 300
BLOCK = 32  # WeCom pads to 32-byte blocks (PKCS#7 with k = 32)

_ENCRYPT_RE = re.compile(rb"<Encrypt>\s*(?:<!\[CDATA\[([^\]]*)\]\]>|([^<]*))\s*</Encrypt>")

_REPLY = (
    "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
    "<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
    "<TimeStamp>{timestamp}</TimeStamp>"
    "<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
)


class CallbackRejected(Exception):
    """A callback that must not be processed. ``status`` is the HTTP answer (403 or 400)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def bad_request(reason: str) -> CallbackRejected:
    return CallbackRejected(reason, 400)


def forbidden(reason: str) -> CallbackRejected:
    return CallbackRejected(reason, 403)


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """sha1 of the sorted, concatenated ``token, timestamp, nonce, encrypt``."""
    parts = sorted((token, timestamp, nonce, encrypt))
    return hashlib.sha1("".join(parts).encode()).hexdigest()


class WecomCrypto:
    """One app's callback crypto. ``clock`` is injectable for the official (2016) vectors."""

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        corp_id: str,
        *,
        window: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self._wechat = WeChatCrypto(token, encoding_aes_key, corp_id)
        except (AssertionError, binascii.Error, ValueError) as exc:
            raise ValueError("wecom.encoding_aes_key is not a valid 43-character key") from exc
        self.token = token
        self.corp_id = corp_id
        self._corp = corp_id.encode()
        self.key: bytes = self._wechat.key
        self._iv = self.key[:16]
        self._ecb = AES.new(self.key, AES.MODE_ECB)
        self.window = window
        self.clock = clock

    # -- checks -----------------------------------------------------------------------------

    def _check_time(self, timestamp: str) -> None:
        try:
            ts = int(timestamp)
        except (TypeError, ValueError):
            raise bad_request("timestamp is not a number") from None
        if abs(self.clock() - ts) > self.window:
            raise forbidden("timestamp outside the allowed window")

    def _check_signature(self, msg_signature: str, timestamp: str, nonce: str, data: str) -> None:
        if not msg_signature or nonce is None:
            raise bad_request("missing msg_signature or nonce")
        expected = signature(self.token, timestamp, nonce, data)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise forbidden("bad signature")

    # -- the envelope -----------------------------------------------------------------------

    def open(self, encrypt: str) -> str:
        """Decrypt a base64 ``Encrypt`` value and check the corp id; typed errors only."""
        try:
            raw = binascii.a2b_base64(encrypt.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise bad_request("ciphertext is not base64") from None
        if not raw or len(raw) % BLOCK:
            raise bad_request("ciphertext length is not a whole number of blocks")
        # CBC decryption is ECB decryption XOR the previous ciphertext block (the IV first):
        # one reusable, stateless ECB object instead of a new CBC cipher per message.
        n = len(raw)
        plain = (
            int.from_bytes(self._ecb.decrypt(raw), "big")
            ^ int.from_bytes(self._iv + raw[:-16], "big")
        ).to_bytes(n, "big")
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes((pad,)) * pad:
            raise bad_request("bad padding")
        body = plain[16:-pad]
        if len(body) < 4:
            raise bad_request("ciphertext too short")
        size = int.from_bytes(body[:4], "big")
        if size > len(body) - 4:
            raise bad_request("bad length field")
        if body[4 + size :] != self._corp:
            raise forbidden("wrong corp id")
        try:
            return body[4 : 4 + size].decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("message is not UTF-8") from None

    def seal(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` into a base64 ``Encrypt`` value."""
        msg = plaintext.encode("utf-8")
        data = b"".join((os.urandom(16), len(msg).to_bytes(4, "big"), msg, self._corp))
        pad = BLOCK - len(data) % BLOCK
        data += bytes((pad,)) * pad
        return binascii.b2a_base64(
            AES.new(self.key, AES.MODE_CBC, self._iv).encrypt(data), newline=False
        ).decode("ascii")

    # -- the operations of the callback URL ---------------------------------------------------

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """GET URL check: the decrypted echostr to answer as plain text."""
        if not echostr or not timestamp:
            raise bad_request("missing echostr or timestamp")
        echostr = echostr.replace(" ", "+")  # a raw "+" in the query decodes to a space
        self._check_time(timestamp)
        self._check_signature(msg_signature, timestamp, nonce, echostr)
        return self.open(echostr)

    def decrypt(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """POST: the decrypted inner XML of a callback body."""
        if not timestamp:
            raise bad_request("missing timestamp")
        self._check_time(timestamp)
        m = _ENCRYPT_RE.search(body)
        if m is None:
            raise bad_request("no Encrypt element")
        encrypt = (m.group(1) if m.group(1) is not None else m.group(2)).decode("ascii", "replace")
        self._check_signature(msg_signature, timestamp, nonce, encrypt)
        return self.open(encrypt)

    def encrypt(self, plaintext: str, nonce: str, timestamp: int | None = None) -> str:
        """The passive reply envelope (XML) for ``plaintext``."""
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        encrypt = self.seal(plaintext)
        return _REPLY.format(
            encrypt=encrypt,
            signature=signature(self.token, ts, nonce, encrypt),
            timestamp=ts,
            nonce=nonce,
        )

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)
