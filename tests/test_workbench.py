"""The workbench (issue 13 points 2-4): its services on both databases, and the pages through
the simulator's OAuth sign-in (cookie, CSRF, 403s with audit rows, bulk decisions)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
from sqlalchemy import select
from workbench_seed import FLAGGED, seed_workbench

from bot.workbench import session as sess
from services import overview, pending_table, unit_tree
from services.pending_table import Filters
from services.workbench_links import login_link, state_ok
from services.workbench_scope import REFUSED
from storage.models import ApprovalStep, AuditLog, Decision, Outbox, Review, ReviewStatus


async def test_overview_and_pending_table_in_sql(any_db, settings) -> None:
    seeded = await seed_workbench(any_db, settings, 12)
    ov = await overview.load_overview(any_db, settings, seeded.union_ids["CITY"])
    assert ov is not None
    assert ov.counts["submitted"] == 12 and ov.counts["not_started"] == 1
    assert ov.eligible == 13
    bars = {b.name: (b.completed, b.eligible, b.submitted) for b in ov.children}
    assert bars == {"常州市天宁区总工会": (0, 12, 12), "常州市钟楼区总工会": (0, 1, 0)}
    assert ov.flagged_total == 2 and {f.removed for f in ov.flagged} == {3}
    assert ov.no_operator_total == 1 and ov.no_operator[0][1] == "常州市钟楼区无人管理有限公司工会"
    assert sum(s for _d, s, _c in ov.daily) == 12  # submissions per day

    page = await pending_table.load_page(any_db, settings, ("wecom", "a_dist"), Filters())
    assert page.total == 12 and len(page.rows) == 12
    assert [r.flagged for r in page.rows[:3]] == [True, True, False]  # flagged first
    flagged = await pending_table.load_page(
        any_db, settings, ("wecom", "a_dist"), Filters(flagged=True)
    )
    assert flagged.total == 2
    assert (
        await pending_table.load_page(any_db, settings, ("wecom", "a_other"), Filters())
    ).total == 0
    assert (
        await pending_table.load_page(any_db, settings, ("wecom", "a_dist"), Filters(hints=True))
    ).total == 0  # no hints in this seed
    # issue 16: a review with hints stored at submission is the one the filter keeps
    hinted = page.rows[4].review_id
    async with any_db.transaction() as s:
        r = await s.get(Review, hinted)
        r.hints = [{"code": "members.declared_differs", "a": 320, "b": 9}]
        r.hint_count = 1
    only = await pending_table.load_page(any_db, settings, ("wecom", "a_dist"), Filters(hints=True))
    assert only.total == 1 and [r.review_id for r in only.rows] == [hinted]
    assert only.hint_counts == {hinted: 1}
    every = await pending_table.load_page(any_db, settings, ("wecom", "a_dist"), Filters())
    assert every.total == 12 and every.hint_counts[hinted] == 1
    assert sum(every.hint_counts.values()) == 1

    head, rows = await unit_tree.children(any_db, settings, seeded.union_ids["CITY"])
    assert head is not None and {r.name: r.below for r in rows}["常州市天宁区总工会"] == 12
    hits = await unit_tree.search(any_db, settings, seeded.union_ids["CITY"], "测试005")
    assert [h.name for h in hits] == ["常州市天宁区测试005有限公司工会委员会"]
    assert hits[0].status == "submitted" and hits[0].contacts == ["联系人5"]


async def sign_in(stack, http: aiohttp.ClientSession, user: str, status: int = 200) -> None:
    link = login_link(stack.settings)
    assert link.endswith("#wechat_redirect")
    q = parse_qs(urlsplit(link).query)
    assert q["scope"] == ["snsapi_base"] and q["response_type"] == ["code"]
    assert q["redirect_uri"] == [f"{stack.bot_url}/workbench/auth"]
    assert state_ok(stack.settings.server.secret_key, q["state"][0])
    async with http.get(link.split("#")[0] + f"&sim_user={user}") as resp:
        assert resp.status == status, await resp.text()
        assert str(resp.url).startswith(f"{stack.bot_url}/workbench/")


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


async def refusals(stack) -> list[AuditLog]:
    async with stack.db.session() as s:
        return list(await s.scalars(select(AuditLog).where(AuditLog.action == REFUSED)))


async def test_workbench_pages_sign_in_decide_and_refuse(stack) -> None:
    seeded = await seed_workbench(stack.db, stack.settings, 12)
    await stack.deliver()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        # no session: to the sign-in
        async with http.get(f"{stack.bot_url}/workbench/", allow_redirects=False) as resp:
            assert resp.status == 302 and "/workbench/login" in resp.headers["Location"]
        await sign_in(stack, http, "a_dist")
        cookie = next(c for c in jar if c.key == sess.COOKIE)
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
        # a code works once
        used = [c for c in stack.sim.calls if c.path == "auth/getuserinfo"][-1]
        async with http.get(
            f"{stack.bot_url}/workbench/auth",
            params={"code": used.query["code"], "state": used.query.get("state", "x")},
        ) as resp:
            assert resp.status == 403

        async with http.get(f"{stack.bot_url}/workbench/") as resp:
            page = await resp.text()
            assert resp.status == 200 and len(page.encode()) < 200_000
        assert 'id="count-submitted">12<' in page and "<svg" in page
        assert "常州市天宁区总工会" in page

        async with http.get(f"{stack.bot_url}/workbench/pending") as resp:
            page = await resp.text()
        assert 'id="pending-total">12<' in page
        token = csrf_of(page)
        steps = seeded.step_ids
        unflagged = [sid for i, sid in enumerate(steps, start=1) if i not in FLAGGED]
        # no CSRF token: refused, nothing decided
        async with http.post(
            f"{stack.bot_url}/workbench/pending", data={"step": unflagged[0], "do": "approve"}
        ) as resp:
            assert resp.status == 403
        # approve 10 at once (and one flagged one, which is skipped)
        form = [("csrf", token), ("do", "approve")] + [("step", str(s)) for s in unflagged[:9]]
        form.append(("step", str(steps[1])))  # P002: flagged
        async with http.post(f"{stack.bot_url}/workbench/pending", data=form) as resp:
            page = await resp.text()
            assert resp.status == 200
        assert page.count("已通过，已转上级工会审核") == 9 and "须打开审核详情核实" in page
        # return one with a reason
        form = [
            ("csrf", token),
            ("do", "return"),
            ("reason", "人数不符"),
            ("step", str(unflagged[9])),
        ]
        async with http.post(f"{stack.bot_url}/workbench/pending", data=form) as resp:
            assert "已退回" in await resp.text()
        # a review's details: masked IDs, history
        async with http.get(f"{stack.bot_url}/workbench/review/{seeded.review_ids[0]}") as resp:
            page = await resp.text()
        assert "区总审核员甲" in page and "通过" in page and "**********" in page
        # another branch's unit: 403 and audited
        lonely = seeded.union_ids["LONELY"]
        async with http.get(f"{stack.bot_url}/workbench/?union={lonely}") as resp:
            assert resp.status == 403
        assert any(r.union_id == lonely for r in await refusals(stack))

    await stack.deliver()
    async with stack.db.session() as s:
        decided = list(
            await s.scalars(
                select(ApprovalStep).where(
                    ApprovalStep.level == 1, ApprovalStep.decision.is_not(None)
                )
            )
        )
    assert sum(d.decision == Decision.approved for d in decided) == 9
    assert sum(d.decision == Decision.returned for d in decided) == 1
    updated = [c for c in stack.sim.cards("a_dist") if c.replace_name]
    assert len(updated) == 10  # every decided card updated through the platform
    async with stack.db.session() as s:
        rids = list(await s.scalars(select(Outbox.request_id).where(Outbox.kind == "card_update")))
    assert rids and all(rids)  # queued by a workbench request: they carry its id
    texts = stack.sim.texts(f"c_P{FLAGGED and 1:03d}")
    assert any("通过" in t for t in texts)

    # a stranger and another branch's approver
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(stack, http, "nobody", 403)  # signed in, but not an operator
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(stack, http, "a_other")
        async with http.get(f"{stack.bot_url}/workbench/units") as resp:
            page = await resp.text()
        token = csrf_of(page)
        form = [("csrf", token), ("do", "approve"), ("step", str(steps[4]))]
        async with http.post(f"{stack.bot_url}/workbench/pending", data=form) as resp:
            assert resp.status == 403
        async with http.get(f"{stack.bot_url}/workbench/review/{seeded.review_ids[0]}") as resp:
            assert resp.status == 403
    async with stack.db.session() as s:
        step = await s.get(ApprovalStep, steps[4])
        assert step is not None and step.decision is None
    # a forged cookie
    forged = sess.make_cookie("not-the-secret-key-at-all-0123456789", "wecom", "a_dist")
    async with aiohttp.ClientSession(cookies={sess.COOKIE: forged}) as http:
        async with http.get(f"{stack.bot_url}/workbench/", allow_redirects=False) as resp:
            assert resp.status == 302
        async with http.post(
            f"{stack.bot_url}/workbench/pending", data={"step": steps[4], "do": "approve"}
        ) as resp:
            assert resp.status == 403
    whats = {r.detail.get("what") for r in await refusals(stack)}
    assert {"not_operator", "csrf", "decide", "review", "union"} <= whats


async def test_chat_command_answers_the_sign_in_link(stack) -> None:
    await seed_workbench(stack.db, stack.settings, 2)
    reply = await stack.sim.send_text("a_dist", "工作台")
    assert "/connect/oauth2/authorize?appid=" in reply.content and "snsapi_base" in reply.content
    reply = await stack.sim.send_text("nobody", "工作台")
    assert "无法使用工作台" in reply.content
    assert ReviewStatus.submitted  # the module's enums import cleanly
