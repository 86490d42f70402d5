"""The ``unioncard`` command line: help for every command, config errors, the data commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from bot.cli import main
from services.imports import HEADERS
from storage.settings import random_secret_key

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    ["serve"],
    ["worker"],
    ["demo"],
    ["db"],
    ["db", "upgrade"],
    ["import"],
    ["import", "units"],
    ["import", "operators"],
    ["import", "members"],
    ["cycle"],
    ["cycle", "open"],
    ["export"],
    ["export", "members"],
    ["demo-data"],
]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCARD")}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings through the environment: a SQLite file of this test's own."""
    for key in list(os.environ):
        if key.startswith("UNIONCARD"):
            monkeypatch.delenv(key)
    db = tmp_path / "cli.db"
    monkeypatch.setenv("UNIONCARD__DATABASE__URL", f"sqlite:///{db}")
    monkeypatch.setenv("UNIONCARD__SERVER__SECRET_KEY", random_secret_key())
    return db


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("serve", "worker", "demo", "db", "import", "cycle", "export", "demo-data"):
        assert f"    {name} " in out or f"    {name}\n" in out, name
    assert "--config" in out


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help(cmd: list[str], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: unioncard" in capsys.readouterr().out


def test_import_help_shows_the_header(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["import", "members", "--help"])
    assert "身份证号码" in capsys.readouterr().out


@pytest.mark.multiprocess
@pytest.mark.slow
def test_config_error_from_the_real_entry_point(tmp_path: Path):
    p = run_cli("--config", str(tmp_path / "missing.toml"), "db", "upgrade")
    assert p.returncode == 2
    assert p.stderr.strip() == f"config error: file not found: {tmp_path / 'missing.toml'}"


def test_config_errors_are_one_line_exit_2(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("UNIONCARD__SERVER__PORT", "not-a-port")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("config error: server.port:") and err.count("\n") == 1
    monkeypatch.delenv("UNIONCARD__SERVER__PORT")
    bad = tmp_path / "bad.toml"
    bad.write_text('[wecom]\nencoding_aes_key = "short"\n', encoding="utf-8")
    monkeypatch.setenv("UNIONCARD_CONFIG", str(bad))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.startswith("config error: wecom.encoding_aes_key")


def test_commands_say_when_the_schema_is_behind(cli_env: Path, capsys):
    for cmd in (["serve"], ["worker"], ["import", "units", __file__]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert "database schema is behind: run `unioncard db upgrade`" in err
        assert err.count("\n") == 1


def test_data_commands_end_to_end(cli_env: Path, tmp_path: Path, capsys):
    assert main(["db", "upgrade"]) == 0
    data = tmp_path / "demo"
    assert main(["demo-data", "-o", str(data), "--members", "300", "-q"]) == 0
    for kind in ("units", "operators", "members"):
        assert (data / f"{kind}.csv").is_file()
        assert main(["import", kind, str(data / f"{kind}.csv"), "-q"]) == 0
    capsys.readouterr()
    assert main(["import", "members", str(data / "members.csv"), "-q"]) == 0
    assert "新增 0，更新 0，未变 300" in capsys.readouterr().out

    unit = next(
        line.split(",")[0]
        for line in (data / "members.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    )
    out = tmp_path / "export.xlsx"
    assert main(["export", "members", "--unit", unit, "-o", str(out)]) == 0
    rows = list(load_workbook(out).active.iter_rows(values_only=True))
    assert tuple(rows[0]) == HEADERS["members"] and len(rows) > 1
    assert all(r[0] == unit and isinstance(r[1], str) and len(r[1]) == 18 for r in rows[1:])
    assert main(["export", "members", "--unit", "NOPE", "-o", str(out)]) == 1

    assert main(["cycle", "open", "--year", "2026", "--cutoff", "2026-07-31", "--deadline",
                 "2026-12-31"]) == 0  # fmt: skip
    assert "opened the 2026 review" in capsys.readouterr().out
    assert main(["cycle", "open", "--year", "2026", "--cutoff", "2026-07-31", "--deadline",
                 "2026-06-30"]) == 1  # fmt: skip
    assert "before the cut-off" in capsys.readouterr().err


def test_bad_import_exit_code_and_error_file(cli_env: Path, tmp_path: Path, capsys):
    assert main(["db", "upgrade"]) == 0
    bad = tmp_path / "m.csv"
    bad.write_text(
        "单位编码,身份证号码,姓名,工会卡号,办卡日期,备注\nX,123,张伟,,,\n", encoding="utf-8"
    )
    errors = tmp_path / "errors.xlsx"
    assert main(["import", "members", str(bad), "--errors", str(errors), "-q"]) == 1
    out = capsys.readouterr().out
    assert "第 2 行" in out and "未写入任何数据" in out
    assert errors.is_file()
    assert main(["import", "members", str(tmp_path / "none.csv")]) == 2


def test_importing_an_approver_sends_the_waiting_cards(cli_env: Path, tmp_path: Path):
    """A review waiting at a level without approvers gets its card when one is imported."""
    import asyncio

    from approval_seed import seed_tree
    from sqlalchemy import select

    from services import approvals
    from storage.db import Database
    from storage.models import Outbox
    from storage.settings import load_settings

    assert main(["db", "upgrade"]) == 0
    settings = load_settings()

    async def prepare() -> int:
        db = Database(settings.database.url)
        t = await seed_tree(db, approvers={"CITY": ["a_city"]})
        res = await approvals.submit(db, settings, t.review.id, t.ops["c_unit"].id)
        await db.dispose()
        assert res.cards_sent == 0  # the district has no approver: the review waits
        return res.step_id

    asyncio.run(prepare())
    ops = tmp_path / "operators.csv"
    ops.write_text(
        "单位编码,平台,用户ID,姓名,角色\nDIST,wecom,a_new,新审核人,审核人\n", encoding="utf-8"
    )
    assert main(["import", "operators", str(ops), "-q"]) == 0

    async def cards_for(user: str) -> list[Outbox]:
        db = Database(settings.database.url)
        async with db.session() as s:
            rows = list(
                await s.scalars(
                    select(Outbox).where(Outbox.recipient == user, Outbox.kind == "card")
                )
            )
        await db.dispose()
        return rows

    assert len(asyncio.run(cards_for("a_new"))) == 1
    assert main(["import", "operators", str(ops), "-q"]) == 0  # again: no second card
    assert len(asyncio.run(cards_for("a_new"))) == 1
