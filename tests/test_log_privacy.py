"""No secret, full ID number or mobile in a log line (at DEBUG too) or a stored error text
(issue 10 point 12): third-party loggers stay at INFO unless named in ``log.debug_loggers``;
every line and every stored error goes through ``services.redact.scrub``."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from sqlalchemy import select, text

from bot.logs import setup_logging
from bot.simulator.stack import free_port
from bot.wecom.client import WecomClient
from bot.wecom.sender import outbox_worker as OutboxSender
from services.messages import Text
from services.outbox import enqueue
from storage.models import Outbox

ID = "32040219900307123X"  # check digit not needed: the point is what a log may show
MOBILE = "13912345678"
SECRET = "corp-secret-Zx81kPq0Lm3nB7vC9dE2"


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    levels = {n: logging.getLogger(n).level for n in ("aiosqlite", "unioncard", "services")}
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)


async def test_debug_logs_show_no_statement_parameters(db, capfd):
    setup_logging("DEBUG")
    logging.getLogger("unioncard.test").debug("ours.debug")
    async with db.session() as s:
        await s.execute(text("SELECT :id_number, :mobile"), {"id_number": ID, "mobile": MOBILE})
    err = capfd.readouterr().err
    assert "ours.debug" in err  # our own DEBUG lines are kept
    assert '"logger": "aiosqlite"' not in err
    assert ID not in err and MOBILE not in err


async def test_a_logger_named_in_debug_loggers_logs_masked(db, capfd):
    setup_logging("DEBUG", debug_loggers=["aiosqlite"])
    async with db.session() as s:
        await s.execute(text("SELECT :id_number, :mobile"), {"id_number": ID, "mobile": MOBILE})
    err = capfd.readouterr().err
    assert '"logger": "aiosqlite"' in err
    assert ID not in err and MOBILE not in err
    assert "3204**********123X" in err and "139****5678" in err  # masked, as DESIGN.md says


async def test_a_redirect_loop_keeps_the_secret_out_of_last_error_and_logs(
    settings, db, redis, capfd
):
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))  # the same URL, query (corpsecret=...) and all

    app = web.Application()
    app.router.add_route("*", "/cgi-bin/{tail:.*}", loop)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings.wecom.api_base = f"http://127.0.0.1:{port}"
    settings.wecom.secret = SECRET
    setup_logging("INFO")
    client = WecomClient(settings, redis, retry_attempts=1, retry_wait=0.01)
    try:
        async with db.transaction() as s:
            enqueue(s, "wecom", "wangwu", Text("您好"))
        await OutboxSender(settings, db, redis, client).run_once()
    finally:
        await client.close()
        await runner.cleanup()
    async with db.session() as s:
        row = (await s.execute(select(Outbox))).scalar_one()
    assert row.last_error and "gettoken" in row.last_error
    assert SECRET not in row.last_error and "corpsecret=***" in row.last_error
    err = capfd.readouterr().err
    assert "outbox.retry" in err
    assert SECRET not in err


def test_scrub_removes_named_secrets_headers_and_masks_numbers(settings):
    from services.redact import remember_settings, scrub

    remember_settings(settings)
    aes = settings.wecom.encoding_aes_key
    raw = (
        "GET /cgi-bin/gettoken?corpid=ww1&corpsecret=abcDEF123456 "
        "/cgi-bin/message/send?access_token=tok-987654321&debug=1 "
        '{"appSecret": "dd-secret-1234567", "Authorization": "Bearer eyJhbGciOi.xyz"} '
        f"EncodingAESKey={aes} key {aes} h5 {settings.server.secret_key} "
        "postgresql://union:pa55word@db:5432/x "
        f"member {ID} mobile {MOBILE} msgid 1234567890123456789012"
    )
    out = scrub(raw)
    for secret in (
        "abcDEF123456", "tok-987654321", "dd-secret-1234567", "eyJhbGciOi", aes,
        settings.server.secret_key, "pa55word", ID, MOBILE,
    ):  # fmt: skip
        assert secret not in out, secret
    assert "corpsecret=***" in out and "access_token=***&debug=1" in out
    assert "3204**********123X" in out and "139****5678" in out
    assert "1234567890123456789012" in out  # a long number that is neither is left alone
    assert "corpid=ww1" in out


def test_the_cli_crash_output_is_scrubbed_by_the_same_function(monkeypatch, capsys):
    from bot import cli

    def boom(args):
        raise RuntimeError(f"GET /x?corpsecret=s3cr3t-value&id={ID}")

    monkeypatch.setattr(cli.import_export, "cmd_demo_data", boom)
    assert cli.main(["demo-data"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "s3cr3t-value" not in err and ID not in err and "corpsecret=***" in err
