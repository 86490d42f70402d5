"""The text size belongs to the channel: a reply's texts are merged and split once, in
``bot.replies.split_reply``, to the ``text_limit`` of the channel that carries them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.replies import split_reply
from bot.wecom.sender import WecomChannel
from services.messages import Card, Text


def _size(m) -> int:
    return len(m.text.encode())


def test_wecom_text_at_its_limit_is_one_message_one_byte_more_is_split() -> None:
    limit = WecomChannel.text_limit
    assert limit == 2048
    a = "甲" * 600  # 1800 bytes
    b = "乙" * 82  # 246 bytes: a + "\n\n" + b is exactly 2048
    out = split_reply([Text(a), Text(b)], None, text_limit=limit)
    assert out.active == [] and _size(out.passive) == 2048
    assert out.passive.text == a + "\n\n" + b
    # one byte more: not merged; each text goes whole, the second through the outbox
    out = split_reply([Text(a), Text(b + "x")], None, text_limit=limit)
    assert out.passive == Text(a) and out.active == [Text(b + "x")]
    # a single text of 2049 bytes: the first 2048-byte part passively, the rest after it
    long = "丙" * 682 + "xyz"  # 2049 bytes
    card = Card(task_id="t", title="c")
    out = split_reply([Text(long), card], None, text_limit=limit)
    assert _size(out.passive) == 2048 and out.active[1] == card
    assert out.passive.text + out.active[0].text == long


@dataclass
class OtherChannel:  # e.g. DingTalk's: the limit comes from the channel, not from the dialogs
    platform: str = "dingtalk"
    text_limit: int = 1000


def test_another_channel_merges_and_splits_to_its_own_limit() -> None:
    ch = OtherChannel()
    texts = [Text("丁" * 200), Text("戊" * 200)]  # 600 + 600 bytes
    wecom = split_reply(texts, None, text_limit=WecomChannel.text_limit, passive=False)
    other = split_reply(texts, None, text_limit=ch.text_limit, passive=False)
    assert [_size(m) for m in wecom.active] == [1202]  # one WeCom message
    assert [_size(m) for m in other.active] == [600, 600]  # too big together for this channel
