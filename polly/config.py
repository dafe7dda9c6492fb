"""Settings from the environment and `.env`, validated once at start-up.

Every threshold, limit and interval of the project lives here (one source of truth). Each field
declares its default, how a value is read, its allowed range and a phrase saying what is allowed;
the phrase is quoted back when a value is rejected.

Why not pydantic-settings: measured in a fresh process it added 11.0 MiB of RSS for one settings
object, against 0.1 MiB for this module plus python-dotenv (which reads `.env` the same way).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/polly.db"
DEFAULT_ENV_FILE = ".env"

# Accepted URL schemes, mapped to the async driver each one runs on.
_SCHEME_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message is one line for the operator."""


class Secret:
    """A value that never shows in repr, str or logs; read it with `get_secret_value()`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------- readers (raise ValueError(reason))


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("not a whole number") from None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not true or false")


def _ids(value: Any) -> list[int]:
    parts = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    ids = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue
        try:
            ids.append(_whole(part))
        except ValueError:
            raise ValueError(f"{str(part).strip()!r} is not an id") from None
    return ids


def _text(value: Any) -> str:
    return str(value)


def _secret(value: Any) -> Secret:
    return value if isinstance(value, Secret) else Secret(str(value))


def _database_url(value: Any) -> str:
    scheme, sep, rest = str(value).partition("://")
    driver = _SCHEME_DRIVERS.get(scheme.lower())
    if not sep or driver is None:
        raise ValueError("unknown URL scheme")
    return f"{driver}://{rest}"


MEMBER_CACHE_CHOICES = ("none", "voice", "joined", "all")


def _member_cache(value: Any) -> str:
    choice = str(value).strip().lower()
    if choice not in MEMBER_CACHE_CHOICES:
        raise ValueError("unknown member cache")
    return choice


def _log_level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError("unknown log level")
    return level


@dataclass(frozen=True)
class Spec:
    """How one setting is read and what it allows."""

    read: Callable[[Any], Any]
    allowed: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be above `low`, not equal to it
    optional: bool = False  # True: empty means None; False: empty means the default
    secret: bool = False

    def parse(self, value: Any) -> Any:
        result = self.read(value)
        if self.low is not None and (result < self.low or (self.low_open and result == self.low)):
            raise ValueError(f"{'at or ' if self.low_open else ''}below {self.low:g}")
        if self.high is not None and result > self.high:
            raise ValueError(f"above {self.high:g}")
        if self.read is _text and not result:
            raise ValueError("empty")
        return result


def _setting(default: Any, spec: Spec) -> Any:
    if isinstance(default, list):
        return field(default_factory=list, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def whole(default: int | None, allowed: str = "a whole number >= 1", low: int | None = 1, **kw: Any) -> Any:
    return _setting(default, Spec(_whole, allowed, low, **kw))


def number(default: float, allowed: str, low: float | None = None, **kw: Any) -> Any:
    return _setting(default, Spec(_number, allowed, low, **kw))


def percent(default: float) -> Any:
    return number(default, "percent, > 0 and <= 100", 0, low_open=True, high=100)


def flag(default: bool) -> Any:
    return _setting(default, Spec(_bool, "true or false"))


def id_list(allowed: str) -> Any:
    return _setting([], Spec(_ids, allowed))


@dataclass(kw_only=True)
class Settings:
    """All of Polly's settings. Field names are the environment variables, upper-cased."""

    # Discord
    discord_token: Secret | None = _setting(
        None, Spec(_secret, "the bot token from the developer portal", optional=True, secret=True)
    )
    log_level: str = _setting("INFO", Spec(_log_level, "one of DEBUG, INFO, WARNING, ERROR"))
    # discord.py's caches. Polly fetches poll messages over HTTP and reads no cached member, so by
    # default both caches are off (the saving is measured in the README).
    discord_max_messages: int = whole(0, "messages, a whole number 0-1000000 (0: no message cache)", 0, high=1_000_000)
    discord_member_cache: str = _setting(
        "none", Spec(_member_cache, "none, voice, joined or all (joined and all need DISCORD_MEMBERS_INTENT=true)")
    )
    discord_members_intent: bool = flag(False)
    discord_chunk_guilds_at_startup: bool = flag(False)

    # Database
    database_url: str = _setting(
        DEFAULT_DATABASE_URL, Spec(_database_url, "a sqlite:// or postgresql:// URL (drivers aiosqlite / asyncpg)")
    )
    db_pool_size: int = whole(10)
    db_max_overflow: int = whole(20, "a whole number >= 0", 0)
    db_pool_timeout: float = number(30.0, "seconds, a number > 0", 0, low_open=True)
    db_pool_recycle: int = whole(3600, "seconds, a whole number >= -1 (-1: never)", -1)
    db_echo: bool = flag(False)

    # Polly's background tasks
    max_failure_entries: int = whole(1000)
    failure_cleanup_age: int = whole(60, "minutes, a whole number >= 1")
    poll_check_interval_minutes: float = number(30.0, "minutes, a number > 0", 0, low_open=True)

    # Memory monitor
    memory_monitoring: bool = flag(True)
    memory_check_interval_seconds: float = number(60.0, "seconds, a number >= 1", 1)
    memory_cleanup_interval_minutes: float = number(15.0, "minutes, a number > 0", 0, low_open=True)
    memory_auto_checkpoint_minutes: float = number(60.0, "minutes, a number > 0", 0, low_open=True)
    memory_history_size: int = whole(1440, "samples kept, a whole number >= 2", 2)
    memory_trend_window_minutes: float = number(60.0, "minutes, a number > 0", 0, low_open=True)
    memory_checkpoint_retention: int = whole(50)
    memory_limit_mb: int | None = whole(None, "MiB, a whole number >= 1, or empty", optional=True)
    memory_max_consecutive_errors: int = whole(5)
    memory_gc_generation: int = whole(1, "0, 1 or 2", 0, high=2)
    memory_trace_frames: int = whole(10, "frames, a whole number 1-100", 1, high=100)
    memory_size_estimate_minutes: float = number(5.0, "minutes, a number > 0", 0, low_open=True)

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
    alert_checkpoint_growth_percent: float = number(20.0, "percent, a number > 0", 0, low_open=True)
    alert_leak_horizon_hours: float = number(24.0, "hours, a number > 0", 0, low_open=True)
    alert_leak_min_mib_per_hour: float = number(1.0, "MiB/hour, a number >= 0", 0)
    alert_for_checks: int = whole(3)
    alert_repeat_minutes: float = number(60.0, "minutes, a number > 0", 0, low_open=True)
    alert_hysteresis_percent: float = number(5.0, "percentage points, a number >= 0", 0)
    alert_history_size: int = whole(500)

    # HTTP health and metrics endpoints
    health_port: int | None = whole(None, "a port 0-65535, or empty (off)", 0, high=65535, optional=True)
    health_host: str = _setting("127.0.0.1", Spec(_text, "an address to bind"))
    health_token: Secret | None = _setting(
        None, Spec(_secret, "a bearer token, or empty (open)", optional=True, secret=True)
    )
    health_max_loop_lag_ms: float = number(1000.0, "milliseconds, a number > 0", 0, low_open=True)
    metrics_instance: str = _setting("polly", Spec(_text, "a label value naming this process"))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The database file of a file SQLite URL; None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[-1].split("?", 1)[0]
        if path in ("", ":memory:") or "mode=memory" in self.database_url:
            return None
        return Path(path)

    def replaced(self, **changes: Any) -> Settings:
        """A validated copy with some values changed."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return load_settings(env_file=None, environ={}, **{**current, **changes})


SETTING_SPECS: dict[str, Spec] = {f.name: f.metadata["spec"] for f in fields(Settings)}
"""Every setting's reader and allowed range, by field name (the variable is its upper-case)."""


def setting_names() -> tuple[str, ...]:
    """Every environment variable Polly reads."""
    return tuple(name.upper() for name in SETTING_SPECS)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _read_env_file(path: str | os.PathLike[str] | None) -> dict[str, str]:
    if path is None or not Path(path).is_file():
        return {}
    from dotenv import dotenv_values  # only when a .env exists

    return {k.upper(): v for k, v in dotenv_values(path, encoding="utf-8").items() if v is not None}


def _describe(name: str, spec: Spec, value: Any, reason: str) -> str:
    shown = "<hidden>" if spec.secret else repr(value)
    return f"{name.upper()}={shown} is not allowed ({reason}); allowed: {spec.allowed}"


def load_settings(
    *,
    env_file: str | os.PathLike[str] | None = DEFAULT_ENV_FILE,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from `.env`, then the environment (which wins), then `overrides` (which win);
    raise ConfigError with one line naming every invalid value.

    Empty values mean unset: the default, or None where the setting is optional.
    """
    raw: dict[str, Any] = _read_env_file(env_file)
    raw.update({k.upper(): v for k, v in (os.environ if environ is None else environ).items()})
    raw.update({k.upper(): v for k, v in overrides.items()})
    values: dict[str, Any] = {}
    problems = []
    for name, spec in SETTING_SPECS.items():
        value = raw.get(name.upper(), MISSING)
        if value is MISSING:
            continue
        if _is_empty(value) and not isinstance(value, list):
            if spec.optional:
                values[name] = None
            continue
        try:
            values[name] = spec.parse(value)
        except ValueError as exc:
            problems.append(_describe(name, spec, value, str(exc)))
    if problems:
        raise ConfigError("Invalid setting: " + "; ".join(problems))
    settings = Settings(**values)
    conflict = _intents_conflict(settings)
    if conflict:
        raise ConfigError(f"Invalid setting: {conflict}")
    return settings


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


def environment_settings() -> Settings:
    """Settings as the environment and `.env` give them, for module-level structures built before
    any bot exists; the defaults where those are invalid (the launcher reports that at start)."""
    try:
        return load_settings()
    except ConfigError:
        return Settings()
