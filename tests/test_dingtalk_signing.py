"""HTTP-mode callback verification: sign = base64(HmacSHA256(secret, ts + "\\n" + secret))."""

from __future__ import annotations

import time

import dingtalk_rig as rig
import pytest
from dingtalk_rig import APP_SECRET, Receiver

from bot.dingtalk import signing
from bot.dingtalk.signing import CallbackRejected

dsim = rig.dsim
receiver = rig.receiver


def test_sign_matches_an_independent_vector() -> None:
    # printf '1700000000000\nSECabc123' | openssl dgst -sha256 -hmac SECabc123 -binary | base64
    assert signing.sign("1700000000000", "SECabc123") == (
        "N5P09a4+p1AMJIJWnIvQd2Yxw9+fu/oEBnPrjCcsLXk="
    )


def _now() -> int:
    return 1_700_000_000_000


@pytest.mark.parametrize("skew_ms", [0, 3_599_000, -3_599_000])
def test_accepts_within_one_hour(skew_ms: int) -> None:
    ts = str(_now() + skew_ms)
    signing.verify(ts, signing.sign(ts, "s3cret"), "s3cret", clock_ms=_now)


@pytest.mark.parametrize("skew_ms", [3_600_001, -3_600_001, -86_400_000])
def test_rejects_outside_one_hour(skew_ms: int) -> None:
    ts = str(_now() + skew_ms)
    with pytest.raises(CallbackRejected) as e:
        signing.verify(ts, signing.sign(ts, "s3cret"), "s3cret", clock_ms=_now)
    assert e.value.status == 403


@pytest.mark.parametrize(
    ("ts", "sign", "status"),
    [
        ("1700000000000", "bad", 403),
        ("1700000000000", signing.sign("1700000000000", "other-secret"), 403),
        ("1700000000001", signing.sign("1700000000000", "s3cret"), 403),  # sign of another ts
        ("", "x", 400),
        ("1700000000000", "", 400),
        ("17e11", "x", 400),
        (None, None, 400),
    ],
)
def test_rejects_bad_input(ts, sign, status) -> None:
    with pytest.raises(CallbackRejected) as e:
        signing.verify(ts, sign, "s3cret", clock_ms=_now)
    assert e.value.status == status


def test_no_secret_configured_rejects_everything() -> None:
    ts = str(_now())
    with pytest.raises(CallbackRejected):
        signing.verify(ts, signing.sign(ts, ""), "", clock_ms=_now)


async def test_simulator_callbacks_verify(dsim, receiver: Receiver) -> None:
    status, _ = await dsim.send_text("zhangsan", "年审")
    assert status == 200
    assert [m.text for m in receiver.messages] == ["年审"]


async def test_old_or_forged_callbacks_are_rejected_end_to_end(dsim, receiver: Receiver) -> None:
    body = {"msgId": "m1", "msgtype": "text", "senderStaffId": "u", "text": {"content": "x"}}
    old = int(time.time() * 1000) - 3_700_000
    status, _ = await dsim.post_signed(dsim.callback_url, body, dsim.signed_headers(old))
    assert status == 403
    forged = dsim.signed_headers()
    forged["sign"] = signing.sign(forged["timestamp"], "not-the-secret")
    status, _ = await dsim.post_signed(dsim.callback_url, body, forged)
    assert status == 403
    assert receiver.messages == []
    assert receiver.rejected == ["timestamp outside the allowed window", "bad sign"]
    assert APP_SECRET not in "".join(receiver.rejected)
