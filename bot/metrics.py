"""Eyes on the service (issue 15 point 6): ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is the Prometheus text format of

- what this process measured: callback latency by platform and event kind, turns, rejections
  by reason, the database pool in use;
- the state every process shares, read at scrape time so that one scrape shows the system:
  the outbox backlog and the age of its oldest pending row (database), the job queue's depth
  and the age of its oldest job (Redis), sends by result code and upload parse times, which the
  workers count in Redis (``record_send``, ``record_upload``).

With ``serve --processes N`` (:mod:`bot.supervisor`) every child writes what it measures to
prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``) and a scrape, whichever
child answers it, sums them (``MultiProcessCollector``); the shared state is read by the
answering child alone and exported once by :class:`SharedState`, a collector that writes no
files. Every answer of these three routes names its process (header ``X-Unioncard-Pid``).

``/healthz`` answers while the process is alive; ``/readyz`` is 200 only when the database and
Redis answer and the schema is at the migrations' head, else 503 with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select, text

from storage.redis import keys

logger = logging.getLogger("unioncard.metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
SENDS_KEY = keys.build("metrics", "sends")
UPLOADS_KEY = keys.build("metrics", "uploads")

CALLBACK_SECONDS = Histogram(
    "unioncard_callback_seconds",
    "Time from a callback's arrival to its answer",
    ["platform", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
    registry=REGISTRY,
)
TURNS = Counter("unioncard_turns", "Dialog turns run", ["platform"], registry=REGISTRY)
REJECTIONS = Counter(
    "unioncard_rejections", "Callbacks refused", ["platform", "reason"], registry=REGISTRY
)
DB_POOL_IN_USE = Gauge(
    "unioncard_db_pool_in_use",
    "Database connections checked out (summed over live serve processes)",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "unioncard_db_pool_size",
    "Database pool size (summed over live serve processes)",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
SCRAPE_ERRORS = Counter(
    "unioncard_scrape_errors", "Shared state that could not be read", ["source"], registry=REGISTRY
)


PID_HEADER = "X-Unioncard-Pid"


class SharedState(Collector):
    """The state every process shares, as read by the last scrape of this process: exported
    once per scrape (never summed over processes, never written to multiprocess files)."""

    def __init__(self) -> None:
        self.outbox_backlog: dict[str, int] = {}
        self.outbox_oldest = 0.0
        self.jobs_depth = 0
        self.jobs_oldest = 0.0
        self.sends: dict[tuple[str, str], int] = {}
        self.upload_count = 0
        self.upload_seconds = 0.0

    def collect(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "unioncard_outbox_backlog", "Outbox rows pending, by platform", labels=["platform"]
        )
        for platform, n in sorted(self.outbox_backlog.items()):
            backlog.add_metric([platform], n)
        yield backlog
        yield GaugeMetricFamily(
            "unioncard_outbox_oldest_age_seconds",
            "Age of the oldest pending outbox row that is due",
            value=self.outbox_oldest,
        )
        yield GaugeMetricFamily(
            "unioncard_jobs_depth", "Jobs queued or running", value=self.jobs_depth
        )
        yield GaugeMetricFamily(
            "unioncard_jobs_oldest_age_seconds",
            "Age of the oldest queued job",
            value=self.jobs_oldest,
        )
        sends = GaugeMetricFamily(
            "unioncard_sends_total",
            "Outbox sends by platform and result (all workers, counted in Redis)",
            labels=["platform", "result"],
        )
        for (platform, result), n in sorted(self.sends.items()):
            sends.add_metric([platform, result], n)
        yield sends
        yield GaugeMetricFamily(
            "unioncard_upload_parse_count", "Uploads parsed (all workers)", value=self.upload_count
        )
        yield GaugeMetricFamily(
            "unioncard_upload_parse_seconds_sum",
            "Seconds spent parsing uploads (all workers)",
            value=self.upload_seconds,
        )


SHARED = SharedState()
REGISTRY.register(SHARED)


def exposition() -> bytes:
    """The text of a scrape: this process's metrics, or with ``PROMETHEUS_MULTIPROC_DIR`` those
    of every serve process summed; the shared state once."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    registry.register(SHARED)
    return generate_latest(registry)


def watch_pool(db: Any) -> None:
    """Count this process's checked-out connections as they come and go."""
    engine = db.engine.sync_engine
    if event.contains(engine, "checkout", _checked_out):
        return
    pool = engine.pool
    if hasattr(pool, "size"):
        DB_POOL_SIZE.inc(pool.size())
    event.listen(engine, "checkout", _checked_out)
    event.listen(engine, "checkin", _checked_in)


def _checked_out(*_args: Any) -> None:
    DB_POOL_IN_USE.inc()


def _checked_in(*_args: Any) -> None:
    DB_POOL_IN_USE.dec()


def observe_callback(platform: str, kind: str, started: float) -> None:
    CALLBACK_SECONDS.labels(platform, kind).observe(time.perf_counter() - started)


def turn(platform: str) -> None:
    TURNS.labels(platform).inc()


def rejected(platform: str, reason: str) -> None:
    REJECTIONS.labels(platform, reason[:40]).inc()


async def record_send(redis: Any, platform: str, result: str) -> None:
    """Count one send's result where every process's scrape sees it."""
    try:
        await redis.hincrby(SENDS_KEY, f"{platform}|{result}", 1)
    except Exception:  # metrics never break a send
        logger.debug("metrics.send_not_counted", exc_info=True)


async def record_sends(redis: Any, platform: str, results: Mapping[str, int]) -> None:
    """Count the results of one call's sends (result -> how many) in one round trip."""
    try:
        pipe = redis.pipeline(transaction=False)
        for result, n in results.items():
            pipe.hincrby(SENDS_KEY, f"{platform}|{result}", n)
        await pipe.execute()
    except Exception:  # metrics never break a send
        logger.debug("metrics.send_not_counted", exc_info=True)


async def record_upload(redis: Any, seconds: float) -> None:
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.hincrby(UPLOADS_KEY, "count", 1)
        pipe.hincrbyfloat(UPLOADS_KEY, "seconds", seconds)
        await pipe.execute()
    except Exception:
        logger.debug("metrics.upload_not_counted", exc_info=True)


def _age(ts: Any, now: float) -> float:
    if ts is None:
        return 0.0
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return max(0.0, now - ts.timestamp())


async def _read_db(db: Any) -> None:
    from storage.models import Outbox, OutboxStatus

    async with db.session() as s:
        pending = Outbox.status == OutboxStatus.pending
        rows = (
            await s.execute(
                select(Outbox.platform, func.count()).where(pending).group_by("platform")
            )
        ).all()
        oldest = await s.scalar(
            select(func.min(Outbox.created_at)).where(
                pending, Outbox.next_attempt_at <= datetime.now(UTC)
            )
        )
    SHARED.outbox_backlog = {str(platform): int(n) for platform, n in rows}
    SHARED.outbox_oldest = _age(oldest, time.time())


async def _read_redis(redis: Any) -> None:
    from bot.jobs import STREAM

    depth = await redis.xlen(STREAM)
    first = await redis.xrange(STREAM, count=1) if depth else []
    SHARED.jobs_depth = int(depth)
    if first:
        ms = int(str(first[0][0]).split("-")[0])
        SHARED.jobs_oldest = max(0.0, time.time() - ms / 1000)
    else:
        SHARED.jobs_oldest = 0.0
    sends = {}
    for field, n in (await redis.hgetall(SENDS_KEY)).items():
        platform, _, result = str(field).partition("|")
        sends[(platform, result)] = int(n)
    SHARED.sends = sends
    uploads = await redis.hgetall(UPLOADS_KEY)
    SHARED.upload_count = int(uploads.get("count", 0))
    SHARED.upload_seconds = float(uploads.get("seconds", 0))


async def schema_problem(db: Any) -> str:
    """'' when the database answers and is at the migrations' head, else why not."""
    from storage.migrations import head_revision

    try:
        async with db.session() as s:
            current = await s.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:
        return f"database: {type(exc).__name__}"
    head = head_revision()
    if current != head:
        return f"schema: at {current}, head is {head}"
    return ""


def add_routes(app: web.Application, db: Any, redis: Any) -> None:
    watch_pool(db)
    pid = {PID_HEADER: str(os.getpid())}

    async def metrics(_request: web.Request) -> web.Response:
        for source, read in (("db", _read_db(db)), ("redis", _read_redis(redis))):
            try:
                await read
            except Exception as exc:
                SCRAPE_ERRORS.labels(source).inc()
                log_line = f"metrics.{source}_unreadable"
                logger.warning(log_line, extra={"fields": {"error": repr(exc)[:200]}})
        body = exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, **pid})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=pid)

    async def readyz(_request: web.Request) -> web.Response:
        problem = await schema_problem(db)
        if not problem:
            try:
                await redis.ping()
            except Exception as exc:
                problem = f"redis: {type(exc).__name__}"
        if problem:
            return web.Response(status=503, text=problem, headers=pid)
        return web.Response(text="ready", headers=pid)

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
