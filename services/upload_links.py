"""Signed, expiring, single-use links to the H5 upload page.

A token is ``<base64url(json claims)>.<base64url(HMAC-SHA256)>``; the claims bind it to the
platform, the user and the review, say when it expires (30 minutes) and carry a random nonce.
Redeeming it marks the nonce used in Redis (``SET NX``), so it works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from storage.redis import keys

TTL_SECONDS = 30 * 60
LINKS_PER_HOUR = 10  # per user: links are free to ask for, uploads are not
LINK_WINDOW_SECONDS = 3600


class UploadTokenError(Exception):
    """``code`` is one of ``forged``, ``expired``, ``used``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class UploadGrant:
    platform: str
    user_id: str
    review_id: int
    expires_at: int  # unix seconds
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret_key: str, body: str) -> str:
    digest = hmac.new(secret_key.encode(), b"h5-upload:" + body.encode(), hashlib.sha256)
    return _b64(digest.digest())


def make_upload_token(
    secret_key: str, platform: str, user_id: str, review_id: int, now: float | None = None
) -> str:
    """A token for ``user_id`` to upload a file to ``review_id``, valid for 30 minutes."""
    now = time.time() if now is None else now
    claims = {
        "p": platform,
        "u": user_id,
        "r": int(review_id),
        "e": int(now) + TTL_SECONDS,
        "n": secrets.token_urlsafe(12),
    }
    body = _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_mac(secret_key, body)}"


def upload_url(settings: Any, token: str) -> str:
    """The page's address as users reach it: ``{server.public_url}/h5/upload/{token}``."""
    return f"{settings.server.public_url}/h5/upload/{token}"


def check_upload_token(secret_key: str, token: str, now: float | None = None) -> UploadGrant:
    """Verify signature and expiry without using the token up."""
    now = time.time() if now is None else now
    body, sep, mac = (token or "").partition(".")
    if not sep or not body or not hmac.compare_digest(_mac(secret_key, body), mac):
        raise UploadTokenError("forged")
    try:
        claims = json.loads(_unb64(body))
        grant = UploadGrant(
            platform=str(claims["p"]),
            user_id=str(claims["u"]),
            review_id=int(claims["r"]),
            expires_at=int(claims["e"]),
            nonce=str(claims["n"]),
        )
    except (ValueError, KeyError, TypeError):
        raise UploadTokenError("forged") from None
    if now >= grant.expires_at:
        raise UploadTokenError("expired")
    return grant


def _used_key(grant: UploadGrant) -> str:
    return keys.build("upload", "used", grant.nonce)


async def peek_upload_token(redis: Any, secret_key: str, token: str, now: float | None = None):
    """Like :func:`check_upload_token`, and also refuse a token already used."""
    grant = check_upload_token(secret_key, token, now)
    if await redis.exists(_used_key(grant)):
        raise UploadTokenError("used")
    return grant


async def redeem_upload_token(
    redis: Any, secret_key: str, token: str, now: float | None = None
) -> UploadGrant:
    """Use the token up (once): the grant, or ``UploadTokenError(forged|expired|used)``."""
    now = time.time() if now is None else now
    grant = check_upload_token(secret_key, token, now)
    ttl = max(60, grant.expires_at - int(now) + 60)
    if not await redis.set(_used_key(grant), "1", nx=True, ex=ttl):
        raise UploadTokenError("used")
    return grant


_COUNT_LINK = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


async def take_link_slot(redis: Any, platform: str, user_id: str) -> int:
    """Count one upload link for ``user_id``: 0 if it may have it, else the seconds until it
    may ask again (at most :data:`LINKS_PER_HOUR` links in a window of an hour)."""
    key = keys.rate(platform, user_id, "upload_link")
    n, ttl = await redis.eval(_COUNT_LINK, 1, key, LINK_WINDOW_SECONDS)
    if int(n) <= LINKS_PER_HOUR:
        return 0
    return max(1, int(ttl))
