"""The rig itself: real Redis, real databases, settings from file and environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import build_tree
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage.models import Member, Review
from storage.settings import ConfigError, load_settings


async def test_redis_is_real(redis) -> None:
    await redis.set("k", "v", ex=10)
    assert await redis.get("k") == "v"
    assert 0 < await redis.ttl("k") <= 10


async def test_one_review_per_union_per_year(any_db) -> None:
    async with build_tree(any_db) as t:
        u = await t.unit("U1", "常州市测试有限公司工会委员会")
        await t.review("U1", 2026)
    with pytest.raises(IntegrityError):
        async with any_db.transaction() as s:
            s.add(Review(union_id=u.id, year=2026))
    async with any_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Review)) == 1


async def test_id_number_active_in_one_union_only(any_db) -> None:
    async with build_tree(any_db) as t:
        await t.unit("A", "常州市测试有限公司工会委员会")
        b = await t.unit("B", "常州市测试有限公司工会委员会")
        await t.add_members("A", 1, ids=["11010519491231002X"], name="张三")
    with pytest.raises(IntegrityError):
        async with any_db.transaction() as s:
            s.add(Member(union_id=b.id, id_number="11010519491231002X", name="张三"))
    # A removed record does not block the same person being active elsewhere.
    async with any_db.transaction() as s:
        s.add(Member(union_id=b.id, id_number="11010519491231002X", name="张三", status="removed"))
    async with any_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Member)) == 2


def test_settings_file_and_env(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[wecom]\ntoken = "from-file"\ncorp_id = "ww1"\n[server]\nport = 9000\n')
    monkeypatch.setenv("UNIONCARD__WECOM__TOKEN", "from-env")
    s = load_settings(cfg)
    assert s.wecom.token == "from-env"
    assert s.wecom.corp_id == "ww1"
    assert s.server.port == 9000


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[server]\nport = 70000\n", "server.port"),
        ('[review]\ndeadline = "2020-01-01"\ncutoff_date = "2020-07-31"\n', "review"),
        ('[wecom]\nencoding_aes_key = "short"\n', "wecom.encoding_aes_key"),
        ("[server]\nbogus = 1\n", "server.bogus"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
    ],
)
def test_settings_errors_name_the_key(tmp_path: Path, body: str, key: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"config error: {key}")
