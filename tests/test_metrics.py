"""``/metrics``, ``/healthz``, ``/readyz`` and the request id (issue 15 point 6)."""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.app import create_app
from bot.jobs import enqueue_job
from bot.logs import JsonLineFormatter
from storage.migrations import upgrade_async
from storage.redis import connect
from tests.wecom_rig import Recorder, rig

USER = "lisi"


def _samples(body: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_a_chat_turn_moves_the_metrics(settings, db, redis, tmp_path) -> None:
    async with rig(settings, db, redis, tmp_path) as r:
        before = _samples((await _get(f"{r.url}/metrics"))[1])
        await r.sim.send_text(USER, "你好")
        plain = r.sim.plaintext(USER, [("MsgType", "text"), ("Content", "x"), ("MsgId", 5)])
        await r.sim.post_callback(plain, tamper=lambda b, q: (b, {**q, "msg_signature": "bad"}))
        await enqueue_job(redis, "nothing.here", {})
        status, body = await _get(f"{r.url}/metrics")
        assert status == 200
        after = _samples(body)
        turns = ("unioncard_turns_total", (("platform", "wecom"),))
        assert after[turns] == before.get(turns, 0) + 1
        count = ("unioncard_callback_seconds_count", (("kind", "text"), ("platform", "wecom")))
        assert after[count] == before.get(count, 0) + 1
        assert any(k[0] == "unioncard_rejections_total" and v >= 1 for k, v in after.items())
        assert after[("unioncard_jobs_depth", ())] == 1
        # a reply in the outbox, then sent: backlog, then a send counted by result
        from bot.replies import send_actively
        from services.messages import Text

        await send_actively(db, "wecom", USER, [Text("稍后")])
        mid = _samples((await _get(f"{r.url}/metrics"))[1])
        assert mid[("unioncard_outbox_backlog", (("platform", "wecom"),))] == 1
        await r.deliver()
        end = _samples((await _get(f"{r.url}/metrics"))[1])
        assert end[("unioncard_sends_total", (("platform", "wecom"), ("result", "sent")))] == 1
        assert end.get(("unioncard_outbox_backlog", (("platform", "wecom"),)), 0) == 0
        assert ("unioncard_db_pool_in_use", ()) in end or db.is_sqlite


async def test_healthz_and_readyz(settings, db, redis, tmp_path) -> None:
    await upgrade_async(db.url)  # the test database is made by create_all: stamp it at head
    async with rig(settings, db, redis, tmp_path) as r:
        assert await _get(f"{r.url}/healthz") == (200, "ok")
        assert await _get(f"{r.url}/readyz") == (200, "ready")
        async with db.transaction() as s:
            await s.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
        status, reason = await _get(f"{r.url}/readyz")
        assert status == 503 and reason.startswith("schema:")
        assert (await _get(f"{r.url}/healthz"))[0] == 200


async def test_readyz_503_when_redis_is_down(settings, db, tmp_path) -> None:
    await upgrade_async(db.url)
    dead = connect("redis://127.0.0.1:1/0")
    app = create_app(settings, db=db, redis=dead, handler=Recorder())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 503 and (await resp.text()).startswith("redis:")
        assert (await client.get("/healthz")).status == 200
    await dead.aclose()


async def test_one_request_id_on_callback_and_job_lines(
    settings, db, redis, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    async with rig(settings, db, redis, tmp_path) as r:
        plain = r.sim.plaintext(
            USER,
            [("MsgType", "file"), ("MediaId", "m1"), ("Title", "a.xlsx"), ("MsgId", 77)],
        )
        await r.sim.post_callback(plain)
        await r.deliver()
    fmt = JsonLineFormatter()
    lines = [json.loads(fmt.format(rec)) for rec in caplog.records]
    job_lines = [x for x in lines if x["event"].startswith("job.") or "wecom" in x["logger"]]
    rids = {x.get("rid") for x in job_lines}
    assert job_lines and len(rids) == 1 and None not in rids
