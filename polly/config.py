"""Settings from the environment and `.env`, validated once at start-up.

Every threshold, limit and interval of the project lives here (one source of truth). Each field
declares its default, how a value is read, its allowed range and a phrase saying what is allowed;
the phrase is quoted back when a value is rejected.

Why not pydantic-settings: measured in a fresh process it added 11.0 MiB of RSS for one settings
object, against 0.1 MiB for this module plus python-dotenv (which reads `.env` the same way).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from polly.records import record, replace
from polly.settings_spec import (
    HYSTERESIS_BOUNDED,
    Secret,
    Spec,
    flag,
    hysteresis_conflict,
    id_list,
    masked_url,
    number,
    percent,
    read_bearer_token,
    read_bind_host,
    read_database_url,
    read_discord_token,
    read_ids,
    read_instance_name,
    read_log_level,
    read_member_cache,
    read_text,
    setting,
    whole,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/polly.db"
DEFAULT_ENV_FILE = ".env"


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message is one line for the operator."""


@record(kw_only=True)
class Settings:
    """All of Polly's settings, fixed once read (a change is a new Settings: `dataclasses.replace`).
    Field names are the environment variables, upper-cased; each default here is the only one."""

    # Discord
    discord_token: Secret | None = setting(
        None,
        Spec(
            read_discord_token,
            "the bot token from the developer portal (Bot tab: Reset Token), or empty offline",
            optional=True,
            secret=True,
        ),
    )
    log_level: str = setting("INFO", Spec(read_log_level, "one of DEBUG, INFO, WARNING, ERROR"))
    # discord.py's caches. Polly fetches poll messages over HTTP and reads no cached member, so by
    # default both caches are off (the saving is measured in the README).
    discord_max_messages: int = whole(0, "messages, a whole number 0-1000000 (0: no message cache)", 0, high=1_000_000)
    discord_member_cache: str = setting(
        "none", Spec(read_member_cache, "none, voice, joined or all (joined and all need DISCORD_MEMBERS_INTENT=true)")
    )
    discord_members_intent: bool = flag(False)
    discord_chunk_guilds_at_startup: bool = flag(False)

    # Database
    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        Spec(read_database_url, "a sqlite:// or postgresql:// URL (drivers aiosqlite / asyncpg)", shown=masked_url),
    )
    # Unset: 1 connection kept on SQLite, 10 on PostgreSQL (see pool_size()).
    db_pool_size: int | None = whole(
        None, "a whole number 1-1000, or empty (1 on SQLite, 10 on PostgreSQL)", optional=True, high=1000
    )
    # Unset: no overflow on SQLite, 20 on PostgreSQL (see max_overflow()).
    db_max_overflow: int | None = whole(
        None, "a whole number 0-1000, or empty (0 on SQLite, 20 on PostgreSQL)", 0, optional=True, high=1000
    )
    db_pool_timeout: float = number(30.0, "seconds, > 0 and <= 3600", 0, low_open=True, high=3600)
    db_pool_recycle: int = whole(3600, "seconds, a whole number -1 to 86400 (-1: never)", -1, high=86_400)
    # A database that hangs (server stopped, TCP still open) must not hang the bot: PostgreSQL
    # connections and statements give up after these (SQLite waits at most its 5 s busy timeout).
    db_connect_timeout: float = number(10.0, "seconds, > 0 and <= 300", 0, low_open=True, high=300)
    db_statement_timeout: float = number(30.0, "seconds, > 0 and <= 3600", 0, low_open=True, high=3600)
    db_echo: bool = flag(False)

    # Polly's background tasks
    max_failure_entries: int = whole(1000, "entries, a whole number 1-10000000", high=10_000_000)
    failure_cleanup_age: int = whole(60, "minutes, a whole number 1-43200 (30 days)", high=43_200)
    # Drives its own loop: below a minute it would check polls back to back.
    poll_check_interval_minutes: float = number(30.0, "minutes, 1 to 1440", 1, high=1440)

    # Memory monitor
    memory_monitoring: bool = flag(True)
    memory_check_interval_seconds: float = number(60.0, "seconds, 1 to 3600", 1, high=3600)
    memory_cleanup_interval_minutes: float = number(
        15.0, "minutes, > 0 and <= 10080 (a week)", 0, low_open=True, high=10_080
    )
    memory_auto_checkpoint_minutes: float = number(
        60.0, "minutes, > 0 and <= 10080 (a week)", 0, low_open=True, high=10_080
    )
    memory_history_size: int = whole(1440, "samples kept, a whole number 2-1000000", 2, high=1_000_000)
    memory_trend_window_minutes: float = number(
        60.0, "minutes, > 0 and <= 10080 (a week)", 0, low_open=True, high=10_080
    )
    memory_checkpoint_retention: int = whole(50, "manual checkpoints kept, a whole number 1-10000", 1, high=10_000)
    memory_auto_checkpoint_retention: int = whole(
        48, "automatic checkpoints kept, a whole number 2-10000", 2, high=10_000
    )
    memory_limit_mb: int | None = whole(
        None, "MiB, a whole number 1-16777216 (16 TiB), or empty", optional=True, high=16_777_216
    )
    memory_max_consecutive_errors: int = whole(5, "failed ticks, a whole number 1-1000", high=1000)
    memory_gc_generation: int = whole(1, "0, 1 or 2", 0, high=2)
    memory_trace_frames: int = whole(10, "frames, a whole number 1-100", 1, high=100)
    memory_chart_retention_hours: float = number(168.0, "hours, 1 to 8760 (a year)", 1, high=8760)
    memory_size_estimate_minutes: float = number(5.0, "minutes, > 0 and <= 1440", 0, low_open=True, high=1440)

    # Who may use /mem, and where alerts go
    memory_admin_user_ids: list[int] = id_list("comma-separated user ids")
    memory_admin_role_ids: list[int] = id_list("comma-separated role ids")
    memory_admin_guild_ids: list[int] = id_list("comma-separated guild ids")
    memory_alert_channel_id: int | None = whole(None, "a channel id, or empty", optional=True)

    # Alert rules
    alert_memory_percent: float = percent(80.0)
    alert_critical_memory_percent: float = percent(95.0)
    alert_pool_overflow_percent: float = percent(50.0)
    alert_dict_fill_percent: float = percent(80.0)
    alert_checkpoint_growth_percent: float = number(20.0, "percent, > 0 and <= 1000", 0, low_open=True, high=1000)
    alert_leak_horizon_hours: float = number(24.0, "hours, > 0 and <= 720 (30 days)", 0, low_open=True, high=720)
    alert_leak_slow_horizon_hours: float = number(168.0, "hours, > 0 and <= 8760 (a year)", 0, low_open=True, high=8760)
    alert_leak_min_mib_per_hour: float = number(2.0, "MiB/hour, 0 to 100000", 0, high=100_000)
    # The leak rule's windows and the warm-up it ignores after a start (see polly/trend.py).
    alert_leak_grace_minutes: float = number(60.0, "minutes, 0 to 1440", 0, high=1440)
    alert_leak_fast_window_minutes: float = number(30.0, "minutes, 5 to 1440", 5, high=1440)
    alert_leak_slow_window_minutes: float = number(120.0, "minutes, 5 to 10080", 5, high=10_080)
    alert_for_checks: int = whole(3, "checks, a whole number 1-1000", 1, high=1000)
    alert_repeat_minutes: float = number(60.0, "minutes, > 0 and <= 10080 (a week)", 0, low_open=True, high=10_080)
    # The container's signals (polly/container.py): throttling at memory.high/max, memory pressure (PSI)
    alert_throttled_events: int = whole(
        10, "events over the last ALERT_FOR_CHECKS checks, 1-1000000", 1, high=1_000_000
    )
    alert_memory_pressure_percent: float = percent(10.0)
    # Bot objects growing (polly/bot_rules.py): a kind rising this much without a fall for this long
    alert_bot_growth_minutes: float = number(30.0, "minutes, 5 to 1440", 5, high=1440)
    alert_bot_growth_objects: int = whole(20, "objects, a whole number 1-1000000", 1, high=1_000_000)
    alert_hysteresis_percent: float = number(
        5.0, "percentage points, 0 to 50, below every percent threshold", 0, high=50
    )
    alert_charts: bool = flag(True)  # memory and leak-trend alerts carry the chart of the last day
    alert_history_size: int = whole(500, "events kept, a whole number 1-100000", high=100_000)

    # HTTP health and metrics endpoints
    health_port: int | None = whole(None, "a port 0-65535, or empty (off)", 0, high=65535, optional=True)
    health_host: str = setting("127.0.0.1", Spec(read_bind_host, "an IP address or a host name to bind"))
    health_token: Secret | None = setting(
        None,
        Spec(read_bearer_token, "a bearer token of 16 characters or more, or empty (open)", optional=True, secret=True),
    )
    health_max_loop_lag_ms: float = number(1000.0, "milliseconds, > 0 and <= 600000", 0, low_open=True, high=600_000)
    # Retired in favour of INSTANCE_NAME; still read, as its alias, so existing scrapes keep their label.
    metrics_instance: str | None = setting(
        None, Spec(read_text, "a label value naming this process (alias of INSTANCE_NAME)", optional=True)
    )

    # Sharding and naming the process (a fleet runs many)
    shard_count: int | None = whole(
        None, "shards of the whole bot, 1-100000, or empty (not sharded)", optional=True, high=100_000
    )
    shard_ids: list[int] = setting(
        [], Spec(read_ids, "comma-separated shard numbers below SHARD_COUNT (this process's shards)")
    )
    instance_name: str | None = setting(
        None,
        Spec(
            read_instance_name, "1-64 letters, digits, '.', '_' or '-', or empty (host name, and shard)", optional=True
        ),
    )
    health_shard_grace_seconds: float = number(60.0, "seconds, 0 to 3600", 0, high=3600)
    fleet_forget_hours: float = number(24.0, "hours, > 0 and <= 8760", 0, low_open=True, high=8760)
    fleet_silent_checks: int = whole(3, "check intervals, a whole number 1-1000", 1, high=1000)
    fleet_reply_seconds: float = number(10.0, "seconds, > 0 and <= 300", 0, low_open=True, high=300)

    # Not settings: how the variables were named ("" for Polly's own bot, "POLLY_" embedded), and
    # which settings were given (by .env, the environment or the caller) rather than defaulted.
    env_prefix: str = field(default="", compare=False)
    given: frozenset[str] = field(default=frozenset(), compare=False)

    def variable(self, name: str) -> str:
        """The environment variable of setting `name` as this process reads it (`POLLY_DATABASE_URL`)."""
        return f"{self.env_prefix}{name.upper()}"

    def instance(self) -> str:
        """How this process is named in metrics, alerts and charts: INSTANCE_NAME, else
        METRICS_INSTANCE, else the host name (and the first shard when sharded). Not the pid: it
        changes at every restart, and every Prometheus series with it."""
        if self.instance_name:
            return self.instance_name
        if self.metrics_instance:
            return self.metrics_instance
        host = socket.gethostname().split(".")[0] or "polly"
        shards = self.shards()
        return f"{host}-shard{shards[0]}" if shards else host

    def shards(self) -> list[int]:
        """The shards this process runs: SHARD_IDS, else all of SHARD_COUNT; empty when not sharded."""
        if self.shard_count is None:
            return []
        return list(self.shard_ids) or list(range(self.shard_count))

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    def pool_size(self) -> int:
        """Connections the pool keeps: DB_POOL_SIZE, else 1 on SQLite and 10 on PostgreSQL.

        SQLite serialises writes, so more kept connections buy the bot nothing, while each one
        costs memory: its own page cache (up to 2 MiB, SQLite's default cache_size) and an
        aiosqlite thread; the started bot kept two (0.12-0.25 MiB more RSS, measured with the
        footprint benchmark)."""
        if self.db_pool_size is not None:
            return self.db_pool_size
        return 1 if self.is_sqlite else 10

    def max_overflow(self) -> int:
        """Connections opened above the pool under load: DB_MAX_OVERFLOW, else 0 on SQLite (work
        that overlaps waits for the pooled connection, up to DB_POOL_TIMEOUT) and 20 on PostgreSQL.

        On SQLite an overflow connection buys little (writes are serialised) and costs a lot: a
        new aiosqlite thread, the file opened and its schema read, and, once the connection is
        closed, that thread's glibc arena, whose top malloc_trim never returns. Polly's own bot
        opened one at start (its poll check overlapping the first checkpoint): 0.3-0.4 MiB more
        RSS, measured over three starts each."""
        if self.db_max_overflow is not None:
            return self.db_max_overflow
        return 0 if self.is_sqlite else 20

    def sqlite_path(self) -> Path | None:
        """The database file of a file SQLite URL; None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite:
            return None
        url = make_url(self.database_url)
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            return None
        path = url.database.removeprefix("file:") if url.query.get("uri") == "true" else url.database
        return Path(path)

    def endpoints_exposure(self, bound_port: int | None = None) -> str | None:
        """A warning when the health and metrics endpoints answer anyone on the network, else None."""
        if self.health_port is None or self.health_token is not None or is_loopback(self.health_host):
            return None
        return (
            f"the health and metrics endpoints on {self.health_host}:{bound_port or self.health_port} are open to "
            "the network without a token: set HEALTH_TOKEN (16+ characters) or HEALTH_HOST=127.0.0.1"
        )

    def replaced(self, **changes: Any) -> Settings:
        """A validated copy with some values changed."""
        current = {name: getattr(self, name) for name in SETTING_SPECS}
        copy = load_settings(env_file=None, environ={}, prefix=self.env_prefix, **{**current, **changes})
        return replace(copy, given=self.given | frozenset(changes))


SETTING_SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Settings) if "spec" in f.metadata}
"""Every setting's reader and allowed range, by field name (the variable is its upper-case)."""


NOT_UTF8 = re.compile("[\ud800-\udfff]")


def setting_names() -> tuple[str, ...]:
    """Every environment variable Polly reads."""
    return tuple(name.upper() for name in SETTING_SPECS)


def is_empty(value: Any) -> bool:
    """An unset value: None, or text with nothing but blanks."""
    return value is None or (isinstance(value, str) and not value.strip())


def _read_env_file(path: str | os.PathLike[str] | None) -> dict[str, str]:
    if path is None or not Path(path).is_file():
        return {}
    from dotenv import dotenv_values  # only when a .env exists

    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Invalid settings file {os.fspath(path)}: byte {exc.start} is not UTF-8; save it as UTF-8"
        ) from None
    return {k.upper(): v for k, v in values.items() if v is not None}


def _describe(variable: str, spec: Spec, value: Any, reason: str) -> str:
    shown = "<hidden>" if spec.secret else spec.shown(value)
    return f"{variable}={shown} is not allowed ({reason}); allowed: {spec.allowed}"


def load_settings(
    *,
    env_file: str | os.PathLike[str] | None = DEFAULT_ENV_FILE,
    environ: Mapping[str, str] | None = None,
    prefix: str = "",
    **overrides: Any,
) -> Settings:
    """Read settings from `.env`, then the environment (which wins), then `overrides` (which win,
    keyed by setting name: `memory_alert_channel_id=...`); raise ConfigError with one line naming
    every invalid value.

    Variables are read as `prefix` + the setting's upper-case name. Empty values mean unset: the
    default, or None where the setting is optional.
    """
    raw: dict[str, Any] = _read_env_file(env_file)
    raw.update({k.upper(): v for k, v in (os.environ if environ is None else environ).items()})
    raw.update({f"{prefix}{k.upper()}": v for k, v in overrides.items()})
    values: dict[str, Any] = {}
    problems = []
    for name, spec in SETTING_SPECS.items():
        variable = f"{prefix}{name.upper()}"
        value = raw.get(variable, MISSING)
        if value is MISSING:
            continue
        if is_empty(value) and not isinstance(value, list):
            if spec.optional:
                values[name] = None
            continue
        try:
            if isinstance(value, str) and NOT_UTF8.search(value):
                # The environment's undecodable bytes arrive as lone surrogates (surrogateescape):
                # no log line, database or reply could carry them.
                raise ValueError("it holds bytes that are not UTF-8")
            values[name] = spec.parse(value)
        except ValueError as exc:
            problems.append(_describe(variable, spec, value, str(exc)))
    if problems:
        raise ConfigError("Invalid setting: " + "; ".join(problems))
    settings = Settings(**values, env_prefix=prefix, given=frozenset(values))
    conflict = _intents_conflict(settings) or _shards_conflict(settings)
    if conflict:
        raise ConfigError(f"Invalid setting: {conflict}")
    bounded = {name: getattr(settings, name) for name in HYSTERESIS_BOUNDED}
    conflict = hysteresis_conflict(settings.alert_hysteresis_percent, bounded, prefix)
    if conflict:
        value = settings.alert_hysteresis_percent
        raise ConfigError(f"Invalid setting: {prefix}ALERT_HYSTERESIS_PERCENT={value:g} is not allowed ({conflict})")
    return settings


def _shards_conflict(s: Settings) -> str | None:
    """SHARD_IDS that discord.py would refuse, or reject at the gateway, said as one line."""
    if not s.shard_ids:
        return None
    shown = ",".join(map(str, s.shard_ids))
    if s.shard_count is None:
        return f"SHARD_IDS={shown} is not allowed (it needs SHARD_COUNT, the shards of the whole bot)"
    outside = [i for i in s.shard_ids if not 0 <= i < s.shard_count]
    if outside:
        return (
            f"SHARD_IDS={shown} is not allowed ({', '.join(map(str, outside))} not below SHARD_COUNT={s.shard_count}); "
            f"allowed: 0 to {s.shard_count - 1}"
        )
    if len(set(s.shard_ids)) != len(s.shard_ids):
        return f"SHARD_IDS={shown} is not allowed (a shard is listed twice)"
    return None


def _intents_conflict(s: Settings) -> str | None:
    """Combinations discord.py would refuse at start (with a traceback), said as one line."""
    if s.discord_members_intent:
        return None
    why = (
        "it needs the privileged Server Members intent: set DISCORD_MEMBERS_INTENT=true and enable "
        "it in the developer portal (Bot tab)"
    )
    if s.discord_member_cache in ("joined", "all"):
        return (
            f"DISCORD_MEMBER_CACHE={s.discord_member_cache!r} is not allowed ({why}); allowed without it: none or voice"
        )
    if s.discord_chunk_guilds_at_startup:
        return f"DISCORD_CHUNK_GUILDS_AT_STARTUP=true is not allowed ({why})"
    return None


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the endpoints on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def environment_setting(name: str) -> Any:
    """One setting as the environment and `.env` give it, for module-level structures built before
    any bot exists; its default where unset or invalid (the launcher reports that at start). Reads
    one variable: building every setting at import left ~0.08 MiB of RSS behind in Polly's own bot."""
    variable = name.upper()
    value = os.environ.get(variable)
    if value is None:
        value = _read_env_file(DEFAULT_ENV_FILE).get(variable)  # {} without a .env
    default = next(f.default for f in fields(Settings) if f.name == name)
    if value is None or is_empty(value):
        return default
    try:
        return SETTING_SPECS[name].parse(value)
    except ValueError:
        return default
