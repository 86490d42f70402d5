"""The workbench's session cookie, CSRF tokens and the OAuth ``state`` (all HMAC-SHA256 with
``server.secret_key``, each with its own purpose prefix so one can never pass for another).

The cookie ``wb_session`` is ``<base64url(json {p, u, n, e})>.<mac>``: platform, user id, a
random nonce and the expiry (8 hours). It is HttpOnly, SameSite=Lax (the page is reached by a
top-level link from the chat app) and Secure when the public URL is https. The person's rights
are read from the database on every request, so an operator switched off (停用) loses access at
once. The CSRF token of a session is the MAC of its nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "wb_session"
TTL_SECONDS = 8 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, body: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}:{body}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    platform: str
    user_id: str
    nonce: str
    expires_at: int

    @property
    def identity(self) -> tuple[str, str]:
        return (self.platform, self.user_id)


def make_cookie(secret: str, platform: str, user_id: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims = {"p": platform, "u": user_id, "n": secrets.token_urlsafe(12)}
    claims["e"] = int(now) + TTL_SECONDS
    body = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_b64(_mac(secret, 'wb-session', body))}"


def read_cookie(secret: str, value: str | None, now: float | None = None) -> Session | None:
    """The session of a genuine, unexpired cookie; None for anything else."""
    if not value or len(value) > 2048:
        return None
    body, _, mac = value.partition(".")
    try:
        good = hmac.compare_digest(_unb64(mac), _mac(secret, "wb-session", body))
        if not good:
            return None
        claims = json.loads(_unb64(body))
        s = Session(str(claims["p"]), str(claims["u"]), str(claims["n"]), int(claims["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    now = time.time() if now is None else now
    return s if s.expires_at > now and s.user_id else None


def csrf_token(secret: str, session: Session) -> str:
    return _b64(_mac(secret, "wb-csrf", session.nonce))


def csrf_ok(secret: str, session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(str(token), csrf_token(secret, session))
