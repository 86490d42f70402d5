"""The callback endpoint against the simulator: verification, rejections, de-duplication,
passive replies, the 5-second rule, files, unsupported messages and card clicks."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.simulator import CallbackRejected, WecomSimulator
from dialogs.events import Event, EventKind, Reply
from services.messages import Button, Card, CardUpdate, Text
from services.outbox import enqueue
from storage.models import Outbox
from tests.wecom_rig import rig

USER = "zhangsan"


def _rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "wecom.callback.rejected"]


async def test_url_verification(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        status, body = await r.sim.verify_url("5927782489442352469")
        assert (status, body) == (200, "5927782489442352469")


async def test_text_gets_passive_encrypted_reply(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        reply = await r.sim.send_text(USER, "你好")
        assert reply is not None and reply.msg_type == "text"
        assert reply.content == "收到：你好"
        assert reply.to_user == USER
        assert r.sim.texts(USER) == ["收到：你好"]
        (ev,) = r.handler.events
        assert (ev.kind, ev.user_id, ev.text, ev.platform) == (
            EventKind.text,
            USER,
            "你好",
            "wecom",
        )


async def test_menu_and_enter_events_reach_the_handler(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        await r.sim.enter_agent(USER)
        reply = await r.sim.click_menu(USER, "review")
        assert reply is not None and reply.content == "收到：review"
        kinds = [(e.kind, e.key) for e in r.handler.events]
        assert kinds == [(EventKind.enter, ""), (EventKind.menu, "review")]


@pytest.mark.parametrize(
    "case", ["signature", "timestamp", "corp_id", "garbage", "no_encrypt", "huge"]
)
async def test_rejections_touch_nothing_and_log_one_line(
    case, settings, db, redis, tmp_path, caplog
) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        sim = r.sim
        plain = sim.plaintext(USER, [("MsgType", "text"), ("Content", "x"), ("MsgId", 1)])
        kwargs: dict = {}
        expected = 403
        if case == "signature":
            kwargs["tamper"] = lambda b, q: (b, {**q, "msg_signature": "0" * 40})
        elif case == "timestamp":
            kwargs["timestamp"] = str(int(time.time()) - 301)
        elif case == "corp_id":
            sim = WecomSimulator(
                "wwOTHERCORP0000001",
                settings.wecom.agent_id,
                "s",
                settings.wecom.token,
                settings.wecom.encoding_aes_key,
                r.sim.callback_url,
            )
        elif case == "garbage":
            expected = 400

            def garbage(body: str, q: dict) -> tuple[str, dict]:
                from bot.wecom.crypto import signature

                enc = "AAAA" * 8
                q = {
                    **q,
                    "msg_signature": signature(
                        settings.wecom.token, q["timestamp"], q["nonce"], enc
                    ),
                }
                return f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt></xml>", q

            kwargs["tamper"] = garbage
        elif case == "huge":
            expected = 400
            kwargs["tamper"] = lambda b, q: (b.replace("<xml>", "<xml>" + " " * 70_000), q)
        else:
            expected = 400
            kwargs["tamper"] = lambda b, q: ("<xml><ToUserName>x</ToUserName></xml>", q)
        caplog.set_level(logging.INFO)
        caplog.clear()
        result = await sim.post_callback(plain, **kwargs)
        if case == "corp_id":
            await sim.stop()
        assert result.status == expected
        assert result.body == ""
        assert r.handler.events == []
        assert await redis.keys("uc:dedup:*") == []
        lines = _rejections(caplog)
        assert len(lines) == 1
        assert not any(rec.exc_info for rec in caplog.records)


async def test_delivered_three_times_one_effect(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "一次"), ("MsgId", 42)])
        first = await r.sim.post_callback(plain)
        again = await r.sim.post_callback(plain, repeat=2)
        assert first.reply is not None and first.reply.content == "收到：一次"
        # a retry of a completed delivery gets the same answer again (issue 15 point 5)
        assert again.reply is not None and again.reply.content == "收到：一次"
        assert len(r.handler.events) == 1
        # an event (no MsgId) retried: FromUserName + CreateTime + Event + EventKey
        ev = r.sim.plaintext(USER, [("MsgType", "event"), ("Event", "click"), ("EventKey", "k")])
        await r.sim.post_callback(ev, repeat=3)
        assert [e.kind for e in r.handler.events] == [EventKind.text, EventKind.menu]
        # three deliveries at the same moment (claimed in one batch): still one effect
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "并发"), ("MsgId", 43)])
        results = await asyncio.gather(*(r.sim.post_callback(plain) for _ in range(3)))
        assert [x.reply.content for x in results] == ["收到：并发"] * 3
        assert [e.text for e in r.handler.events].count("并发") == 1


async def test_retry_while_in_progress_gets_empty_200_at_its_deadline(
    settings, db, redis, tmp_path
) -> None:
    gate = asyncio.Event()

    async def slow(ev: Event) -> Reply:
        await gate.wait()
        return Reply([Text("好了")])

    async with rig(settings, db, redis, tmp_path, script=slow, reply_timeout=0.5) as r:
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "慢"), ("MsgId", 7)])
        first = asyncio.create_task(r.sim.post_callback(plain))
        await asyncio.sleep(0.2)
        retry = await r.sim.post_callback(plain)
        assert (retry.status, retry.body) == (200, "")
        gate.set()
        done = await first
        assert done.reply is None  # late: goes through the outbox
        assert len(r.handler.events) == 1


async def test_late_reply_goes_through_the_outbox(settings, db, redis, tmp_path) -> None:
    async def slow(ev: Event) -> Reply:
        await asyncio.sleep(0.5)
        return Reply([Text("迟到的回答"), Text("第二条")])

    async with rig(settings, db, redis, tmp_path, script=slow, reply_timeout=0.1) as r:
        started = time.monotonic()
        reply = await r.sim.send_text(USER, "问")
        assert reply is None
        assert time.monotonic() - started < 0.45
        for _ in range(50):
            async with db.session() as s:
                if len((await s.execute(select(Outbox))).all()) == 1:
                    break
            await asyncio.sleep(0.05)
        await r.deliver()
        # the channel merges consecutive texts (one send, not two), in order
        assert r.sim.texts(USER) == ["迟到的回答\n\n第二条"]


async def test_extra_messages_go_actively_in_order(settings, db, redis, tmp_path) -> None:
    card = Card(task_id="t1", title="审核", buttons=[Button("appr:approve:1", "通过")])

    async def many(ev: Event) -> Reply:
        return Reply([Text("第一条"), card, Text("第三条")])

    async with rig(settings, db, redis, tmp_path, script=many) as r:
        reply = await r.sim.send_text(USER, "hi")
        assert reply is not None and reply.content == "第一条"
        await asyncio.sleep(0.2)
        await r.deliver()
        inbox = r.sim.inbox(USER)
        assert [(i.kind, i.via, i.text or i.task_id) for i in inbox] == [
            ("text", "passive", "第一条"),
            ("card", "active", "t1"),
            ("text", "active", "第三条"),
        ]


async def test_long_text_is_split_at_2048_bytes(settings, db, redis, tmp_path) -> None:
    long_text = "\n".join(f"第{i}行：" + "很长的内容" * 10 for i in range(60))

    async def long(ev: Event) -> Reply:
        return Reply([Text(long_text)])

    async with rig(settings, db, redis, tmp_path, script=long) as r:
        reply = await r.sim.send_text(USER, "长")
        assert reply is not None and len(reply.content.encode()) <= 2048
        await asyncio.sleep(0.2)
        await r.deliver()
        got = r.sim.texts(USER)
        assert len(got) > 1
        assert "\n".join(got) == long_text
        assert not any(i.truncated for i in r.sim.inbox(USER))


async def test_unsupported_message_gets_polite_reply(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        reply = await r.sim.send_unsupported(USER, "image")
        assert reply is not None and "暂不支持" in reply.content
        reply = await r.sim.send_unsupported(USER, "location")
        assert reply is not None and "暂不支持" in reply.content
        assert r.handler.events == []


async def test_file_is_acknowledged_then_processed_in_background(
    settings, db, redis, tmp_path
) -> None:
    seen: list[bytes] = []

    async def on_upload(ev: Event) -> Reply:
        if ev.kind is EventKind.upload:
            seen.append(await asyncio.to_thread(Path(ev.upload_path).read_bytes))
            return Reply([Text(f"文件“{ev.file_name}”已处理：3 行")])
        return Reply([Text("?")])

    async with rig(settings, db, redis, tmp_path, script=on_upload) as r:
        data = "身份证号,姓名\n110101199003071234,张三\n".encode("utf-8-sig")
        reply = await r.sim.send_file(USER, "名单.csv", data)
        assert reply is not None and "已收到文件" in reply.content
        assert r.handler.events == []  # nothing processed inside the callback
        await r.deliver()
        assert seen == [data]
        (ev,) = r.handler.events
        assert (ev.kind, ev.file_name, ev.user_id) == (EventKind.upload, "名单.csv", USER)
        assert r.sim.texts(USER)[-1] == "文件“名单.csv”已处理：3 行"
        assert [c.path for c in r.sim.calls if c.path == "media/get"] == ["media/get"]


async def test_card_click_answers_with_update_button(settings, db, redis, tmp_path) -> None:
    async def decide(ev: Event) -> Reply:
        assert ev.kind is EventKind.card_action
        assert not hasattr(ev, "response_code")  # the click's code stays in the channel
        return Reply(
            [Text("已通过，已通知下一级。")],
            card_update=CardUpdate(task_id=ev.task_id, replace_text="已通过"),
        )

    async with rig(settings, db, redis, tmp_path, script=decide) as r:
        card = Card(
            task_id="appr-9-1-zhangsan",
            title="年审待审核",
            description="第 1 级，共 2 级",
            lines=[("单位", "某某公司工会"), ("会员", "120 人")],
            buttons=[Button("appr:approve:9", "通过"), Button("appr:return:9", "退回", 3)],
        )
        async with db.transaction() as s:
            enqueue(s, "wecom", USER, card)
        await r.deliver()
        reply = await r.sim.click_button(USER, "appr-9-1-zhangsan", "appr:approve:9")
        assert reply is not None and reply.msg_type == "update_button"
        assert r.sim.card(USER, "appr-9-1-zhangsan").replace_name == "已通过"
        (ev,) = r.handler.events
        assert (ev.key, ev.task_id, ev.raw_type) == (
            "appr:approve:9", "appr-9-1-zhangsan", "button_interaction",
        )  # fmt: skip
        await asyncio.sleep(0.2)
        await r.deliver()
        assert r.sim.texts(USER) == ["已通过，已通知下一级。"]


async def test_rejected_callback_raises_in_simulator(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        r.sim.sealer.token = "wrong-token"
        with pytest.raises(CallbackRejected):
            await r.sim.send_text(USER, "x")


async def test_handler_error_gets_polite_reply_and_one_log(settings, db, redis, tmp_path, caplog):
    async def broken(ev: Event) -> Reply:
        raise RuntimeError("bug")

    async with rig(settings, db, redis, tmp_path, script=broken) as r:
        caplog.set_level(logging.INFO)
        reply = await r.sim.send_text(USER, "x")
        assert reply is not None and "系统繁忙" in reply.content
        errors = [x for x in caplog.records if x.getMessage() == "wecom.callback.handler_error"]
        assert len(errors) == 1


class _Died(BaseException):
    """A worker process dying in the middle of a job."""


async def test_file_job_of_a_dead_worker_is_taken_over(settings, db, redis, tmp_path) -> None:
    from bot.jobs import JobRunner

    async def on_upload(ev: Event) -> Reply:
        return Reply([Text(f"处理完毕：{ev.file_name}")])

    async with rig(settings, db, redis, tmp_path, script=on_upload) as r:
        reply = await r.sim.send_file(USER, "名单.xlsx", b"PK\x03\x04" + b"q" * 200)
        assert reply is not None and "已收到文件" in reply.content

        async def die(_payload: dict) -> None:
            raise _Died

        dead = JobRunner(redis, {"wecom.file": die}, consumer="dead-worker")
        with pytest.raises(_Died):
            await dead.run_once(block_ms=None)
        assert r.handler.events == []
        r.worker.jobs.idle_ms = 0  # the dead worker's job is now "abandoned"
        assert await r.worker.jobs.run_once(block_ms=None) == 1
        await r.deliver()
        assert [e.file_name for e in r.handler.events] == ["名单.xlsx"]
        assert r.sim.texts(USER)[-1] == "处理完毕：名单.xlsx"
        assert await redis.xlen("uc:jobs") == 0


async def test_late_answer_to_a_click_updates_the_card_with_the_click_code(
    settings, db, redis, tmp_path
) -> None:
    """The answer comes after the reply timeout: the clicked card's update goes through the
    outbox, with the code of the click (not the one its send left)."""

    async def slow(ev: Event) -> Reply:
        await asyncio.sleep(0.5)
        return Reply([Text("已同意。")], card_update=CardUpdate(ev.task_id, "已同意转出"))

    async with rig(settings, db, redis, tmp_path, script=slow, reply_timeout=0.1) as r:
        card = Card(
            task_id="xfer-3-zhangsan", title="转出", buttons=[Button("xfer:agree:3", "同意")]
        )
        async with db.transaction() as s:
            enqueue(s, "wecom", USER, card)
        await r.deliver()
        (sent_code,) = [c.response["response_code"] for c in r.sim.calls_to("message/send")]
        reply = await r.sim.click_button(USER, "xfer-3-zhangsan", "xfer:agree:3")
        assert reply is None  # answered late
        await asyncio.sleep(0.6)
        await r.deliver()
        assert r.sim.card(USER, "xfer-3-zhangsan").replace_name == "已同意转出"
        calls = r.sim.calls_to("message/update_template_card")
        assert [c.errcode for c in calls] == [0]
        assert calls[0].body["response_code"] not in ("", sent_code)  # the click's
        assert r.sim.texts(USER) == ["已同意。"]
