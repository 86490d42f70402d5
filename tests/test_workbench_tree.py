"""The workbench's tree pages (issue 14 point 7) over HTTP through the simulator's OAuth:
preview before confirm, CSRF on every POST, 403 + audit outside the subtree, Chinese refusals
on the page, a request across federations decided by the other side."""

from __future__ import annotations

import html as H

import aiohttp
from sqlalchemy import select
from test_workbench import csrf_of, refusals, sign_in
from tree_web_seed import EMPLOYER, seed_tree

from storage.models import AuditLog, Member, MoveRequest, Operator, Union


async def unit(stack, code: str) -> Union | None:
    async with stack.db.session() as s:
        return await s.scalar(select(Union).where(Union.code == code))


async def post(http, url: str, data) -> tuple[int, str]:
    async with http.post(url, data=data) as resp:
        return resp.status, H.unescape(await resp.text())


async def test_tree_pages_preview_confirm_and_refuse(stack) -> None:
    seeded = await seed_tree(stack.db, stack.settings)
    base = f"{stack.bot_url}/workbench"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(stack, http, "a_dist")
        async with http.get(f"{base}/tree/create") as resp:
            page = await resp.text()
        assert resp.status == 200 and "没有操作管理员的单位" in page and "IND" in page
        token = csrf_of(page)
        form = {
            "parent": "DIST",
            "code": "NEW1",
            "name": "常州市天宁区新设有限公司工会委员会",
            "kind": "基层工会",
            "status": "未建立工会",
            "op_platform": "wecom",
            "op_user": "c_new1",
            "op_name": "新联系人",
        }
        # no CSRF: 403, nothing created
        status, _ = await post(http, f"{base}/tree/create", {**form, "do": "confirm"})
        assert status == 403 and await unit(stack, "NEW1") is None
        # confirm without the preview's token: only a preview
        status, page = await post(
            http, f"{base}/tree/create", {**form, "csrf": token, "do": "confirm"}
        )
        assert status == 200 and 'id="preview"' in page and "将新增下级单位" in page
        assert await unit(stack, "NEW1") is None
        seen = page.split('name="seen" value="')[1].split('"')[0]
        # the form edited after the preview: previewed again, not applied
        edited = {**form, "code": "NEW2", "csrf": token, "seen": seen, "do": "confirm"}
        status, page = await post(http, f"{base}/tree/create", edited)
        assert 'id="preview"' in page and await unit(stack, "NEW2") is None
        status, page = await post(
            http, f"{base}/tree/create", {**form, "csrf": token, "seen": seen, "do": "confirm"}
        )
        assert "已新增单位" in page
        new = await unit(stack, "NEW1")
        assert new is not None and new.parent_id == seeded.union_ids["DIST"]
        async with stack.db.session() as s:
            op = await s.scalar(select(Operator).where(Operator.union_id == new.id))
            assert op is not None and op.user_id == "c_new1"
            assert await s.scalar(select(AuditLog).where(AuditLog.action == "unit.created"))
        # D1 refused in Chinese on the page
        bad = {**form, "code": "NEW3", "name": "新设公司", "csrf": token, "do": "preview"}
        status, page = await post(http, f"{base}/tree/create", bad)
        assert status == 200 and 'id="error"' in page and "D1" in page
        # a parent outside the subtree: 403 + audit row
        before = len(await refusals(stack))
        out = {**form, "parent": "OTHER", "code": "NEW4", "csrf": token, "do": "preview"}
        status, _ = await post(http, f"{base}/tree/create", out)
        assert status == 403 and len(await refusals(stack)) == before + 1
        assert (await refusals(stack))[-1].detail["what"] == "tree.create"
        # merge with a review in progress: refused on the page
        status, page = await post(
            http, f"{base}/tree/merge", {"keep": "P001", "drop": "DUPC", "csrf": token}
        )
        assert status == 200 and "年审已提交待审核" in page and await unit(stack, "DUPC")
        # merge outside the subtree: 403
        status, _ = await post(
            http, f"{base}/tree/merge", {"keep": "LONELY", "drop": "DUPC", "csrf": token}
        )
        assert status == 403
        # split: the preview ticks the employer's members; one unticked → 2 move
        split = {
            "joint": "JOINT",
            "employer": EMPLOYER,
            "code": "SPLIT1",
            "name": "常州甲乙贸易有限公司工会委员会",
            "csrf": token,
            "do": "preview",
        }
        status, page = await post(http, f"{base}/tree/split", split)
        assert page.count('name="member"') == 5 and page.count(" checked") == 3
        async with stack.db.session() as s:
            ids = list(
                await s.scalars(
                    select(Member.id).where(Member.remark == EMPLOYER).order_by(Member.id)
                )
            )
        ticked = [("member", str(i)) for i in ids[:2]]
        data = [*split.items(), ("picked", "1"), *ticked]
        status, page = await post(http, f"{base}/tree/split", data)
        assert "转入会员 2 人" in page
        seen = page.split('name="seen" value="')[1].split('"')[0]
        data = [(k, v) for k, v in data if k != "do"] + [("do", "confirm"), ("seen", seen)]
        status, page = await post(http, f"{base}/tree/split", data)
        assert "已拆分" in page, page
        new = await unit(stack, "SPLIT1")
        assert new is not None
        async with stack.db.session() as s:
            moved = list(await s.scalars(select(Member.id).where(Member.union_id == new.id)))
        assert sorted(moved) == ids[:2]
        # move across federations: a request; a_other accepts it on the page
        status, page = await post(
            http, f"{base}/tree/move", {"unit": "MOVEME", "to": "OTHER", "csrf": token}
        )
        assert "调入申请" in page
        seen = page.split('name="seen" value="')[1].split('"')[0]
        status, page = await post(
            http,
            f"{base}/tree/move",
            {"unit": "MOVEME", "to": "OTHER", "csrf": token, "seen": seen, "do": "confirm"},
        )
        assert "已向" in page
        async with stack.db.session() as s:
            req = await s.scalar(select(MoveRequest))
        assert req is not None and req.status == "pending"
        # a_dist cannot decide it (not the receiving side): 403
        status, _ = await post(
            http, f"{base}/tree/move/decide", {"request": req.id, "do": "accept", "csrf": token}
        )
        assert status == 403
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(stack, http, "a_other")
        async with http.get(f"{base}/tree/move") as resp:
            page = await resp.text()
        assert f'data-request="{req.id}"' in page
        status, page = await post(
            http,
            f"{base}/tree/move/decide",
            {"request": req.id, "do": "accept", "csrf": csrf_of(page)},
        )
        assert "已接收" in page
        moved_unit = await unit(stack, "MOVEME")
        assert moved_unit is not None and moved_unit.parent_id == seeded.union_ids["OTHER"]
    # a contact: 403 on the tree pages
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await sign_in(stack, http, "c_P001")
        async with http.get(f"{base}/tree/create") as resp:
            assert resp.status == 403
