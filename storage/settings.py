"""Configuration: a TOML file overridden by environment variables.

The file comes from ``--config PATH`` or ``UNIONCARD_CONFIG``; every key can be overridden by an
environment variable named ``UNIONCARD__SECTION__KEY`` (for example ``UNIONCARD__WECOM__TOKEN``).
``config.example.toml`` documents every key. :func:`load_settings` raises :class:`ConfigError`
with one line naming the key and the problem; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "UNIONCARD__"
CONFIG_ENV = "UNIONCARD_CONFIG"


class ConfigError(Exception):
    """A missing or invalid configuration value; ``str()`` is one line for the operator."""


# The value config.example.toml ships with: published, so it signs nothing in production.
EXAMPLE_SECRET_KEY = "change-me-please-change-me-please"
SECRET_KEY_MIN_CHARS = 32
SECRET_KEY_HOWTO = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` may not sign H5 links in production, or ``None`` if it may."""
    if not key:
        return "is empty"
    if key == EXAMPLE_SECRET_KEY:
        return "is the published example value"
    if len(key) < SECRET_KEY_MIN_CHARS:
        return f"is shorter than {SECRET_KEY_MIN_CHARS} characters"
    return None


def require_secret_key(settings: Settings) -> None:
    """``serve`` and ``worker`` refuse a weak ``server.secret_key`` (one line, exit code 2):
    anyone who knows the key can mint H5 upload links for any user."""
    problem = secret_key_problem(settings.server.secret_key)
    if problem:
        raise ConfigError(
            f"config error: server.secret_key: {problem}; set a random secret of at least "
            f"{SECRET_KEY_MIN_CHARS} characters, e.g. from: {SECRET_KEY_HOWTO}"
        )


def random_secret_key() -> str:
    """A fresh key for ``demo`` and the tests (one process: nothing else must verify it)."""
    return secrets.token_urlsafe(48)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    # Signs H5 upload links; ``serve``/``worker`` refuse a weak one (require_secret_key).
    secret_key: str = ""
    backlog: int = Field(2048, ge=16)
    # a client must send its request line and headers within this (from connecting, or from
    # the previous answer on a kept-alive connection), and its body within the other
    header_timeout_seconds: float = Field(10, gt=0, le=300)
    body_timeout_seconds: float = Field(120, gt=0, le=3600)

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./var/unioncard.db"
    echo: bool = False
    # PostgreSQL connections a process keeps (pool_size) and may open beyond them (max_overflow)
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=10, ge=0)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, v: str) -> str:
        if v.startswith("sqlite:"):
            v = "sqlite+aiosqlite:" + v[len("sqlite:") :]
        elif v.startswith(("postgresql://", "postgres://")):
            v = "postgresql+asyncpg://" + v.split("://", 1)[1]
        if not v.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return v


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"

    @field_validator("url")
    @classmethod
    def _redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return v


class WecomSettings(_Section):
    corp_id: str = ""
    agent_id: int = 1000002
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base: str = "https://qyapi.weixin.qq.com"
    # the workbench's sign-in: ``{oauth_base}/connect/oauth2/authorize`` (the simulator stands in)
    oauth_base: str = "https://open.weixin.qq.com"

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, v: str) -> str:
        if v and len(v) != 43:
            raise ValueError("must be the 43-character EncodingAESKey from the WeCom admin console")
        return v

    @field_validator("api_base", "oauth_base")
    @classmethod
    def _base(cls, v: str) -> str:
        return v.rstrip("/")

    @property
    def enabled(self) -> bool:
        return bool(self.corp_id and self.token and self.encoding_aes_key)


class DingtalkSettings(_Section):
    mode: Literal["http", "stream"] = "stream"
    app_key: str = ""
    app_secret: str = ""
    robot_code: str = ""
    card_template_id: str = ""
    api_base: str = "https://api.dingtalk.com"
    oapi_base: str = "https://oapi.dingtalk.com"
    # the workbench's in-app sign-in (H5 micro-app 免登): the organisation's CorpId and the
    # DingTalk JSAPI script the sign-in page loads (it talks to the DingTalk client)
    corp_id: str = ""
    jsapi_url: str = "https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/dingtalk.open.js"

    @field_validator("api_base", "oapi_base", "jsapi_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @property
    def enabled(self) -> bool:
        return bool(self.app_key and self.app_secret)


class ReviewSettings(_Section):
    year: int = Field(2026, ge=2000, le=2100)
    cutoff_date: date = date(2026, 7, 31)
    deadline: date = date(2026, 12, 31)
    grace_days: int = Field(0, ge=0, le=60)
    # "root" ends the approval chain at the top of the tree; otherwise a union code, or the
    # unions marked is_final_approver in the data end it wherever they stand.
    final_approver: str = "root"
    high_removal_ratio: float = Field(0.2, gt=0, le=1)
    high_removal_count: int = Field(50, ge=1)
    list_page_size: int = Field(10, ge=1, le=50)
    file_mode_threshold: int = Field(50, ge=1)
    cursor_idle_days: int = Field(7, ge=1, le=90)
    other_info_max_chars: int = Field(500, ge=10, le=5000)

    @model_validator(mode="after")
    def _order(self) -> ReviewSettings:
        if self.deadline < self.cutoff_date:
            raise ValueError("deadline must not be before cutoff_date")
        return self


_QUIET_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


def parse_quiet_hours(value: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` → (21:00, 08:00): local times between which nothing is sent (the span
    may cross midnight; the end is when sending resumes). ``""`` → ``None``: no quiet hours."""
    value = value.strip()
    if not value:
        return None
    m = _QUIET_RE.fullmatch(value)
    if not m:
        raise ValueError('must look like "21:00-08:00" (or "" for none)')
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError("not a time of day")
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError('start and end are equal (use "" for no quiet hours)')
    return start, end


def in_quiet_hours(quiet: tuple[time, time] | None, t: time) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    return start <= t < end if start < end else (t >= start or t < end)


class ReminderSettings(_Section):
    enabled: bool = True
    days_before: list[int] = Field(default_factory=lambda: [7, 3, 1])
    hour: int = Field(9, ge=0, le=23)
    timezone: str = "Asia/Shanghai"
    urge_once_per_days: int = Field(1, ge=1)
    # Local times when nothing goes out ("21:00-08:00"; "" = none): reminders, 催办 and
    # `remind --now` queued then wait for the end.
    quiet_hours: str = "21:00-08:00"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, v: str) -> str:
        quiet = parse_quiet_hours(v)
        return "" if quiet is None else f"{quiet[0]:%H:%M}-{quiet[1]:%H:%M}"

    @model_validator(mode="after")
    def _hour_not_quiet(self) -> ReminderSettings:
        if in_quiet_hours(self.quiet, time(self.hour)):
            raise ValueError(f"hour {self.hour} falls in quiet_hours {self.quiet_hours}")
        return self

    @property
    def quiet(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours)

    @field_validator("days_before")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 90 for d in v):
            raise ValueError("each value must be between 0 and 90")
        return sorted(set(v), reverse=True)


class LimitSettings(_Section):
    upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    upload_rows: int = Field(100_000, ge=1, le=1_000_000)
    parse_memory_mb: int = Field(1024, ge=64)
    parse_cpu_seconds: int = Field(20, ge=1)
    parse_timeout_seconds: float = Field(30, gt=0)
    send_per_minute: int = Field(30, ge=1)
    send_per_hour: int = Field(1000, ge=1)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Third-party loggers stay at INFO; these (e.g. ["aiosqlite"]) log at DEBUG too.
    debug_loggers: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    wecom: WecomSettings = Field(default_factory=WecomSettings)
    dingtalk: DingtalkSettings = Field(default_factory=DingtalkSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file, which is passed in as init values.
        return (env_settings, init_settings)


def _error_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key (see config.example.toml)"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more)" if more else ""
    return f"config error: {key}: {msg}{tail}"


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ``$UNIONCARD_CONFIG``), then the environment.

    ``overrides`` are section dicts merged over the file (used by tests and ``demo``).
    """
    path = path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config error: file not found: {p}")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config error: {p}: not valid TOML: {exc}") from None
    for section, values in overrides.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_error_line(exc)) from None
