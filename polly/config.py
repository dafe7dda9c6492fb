"""Settings from the environment and `.env`, validated once at start-up.

Every threshold, limit and interval of the project lives here (one source of truth). Each
field's ``description`` says what is allowed; it is quoted back when a value is rejected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/polly.db"

# Accepted URL schemes, mapped to the async driver each one runs on.
_SCHEME_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

IdList = Annotated[list[int], NoDecode]


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message is one line for the operator."""


def _positive_int(default: int, allowed: str = "a whole number >= 1") -> Any:
    return Field(default, ge=1, description=allowed)


class Settings(BaseSettings):
    """All of Polly's settings. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # Discord
    discord_token: SecretStr | None = Field(None, description="the bot token from the developer portal")
    log_level: str = Field("INFO", description="one of DEBUG, INFO, WARNING, ERROR")

    # Database
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="a sqlite:// or postgresql:// URL (drivers aiosqlite / asyncpg)",
    )
    db_pool_size: int = _positive_int(10)
    db_max_overflow: int = Field(20, ge=0, description="a whole number >= 0")
    db_pool_timeout: float = Field(30.0, gt=0, description="seconds, a number > 0")
    db_pool_recycle: int = Field(3600, ge=-1, description="seconds, a whole number >= -1 (-1: never)")
    db_echo: bool = Field(False, description="true or false")

    # Polly's background tasks
    max_failure_entries: int = _positive_int(1000)
    failure_cleanup_age: int = _positive_int(60, "minutes, a whole number >= 1")

    # Memory monitor
    memory_monitoring: bool = Field(True, description="true or false")
    memory_check_interval_seconds: float = Field(60.0, ge=1, description="seconds, a number >= 1")
    memory_cleanup_interval_minutes: float = Field(15.0, gt=0, description="minutes, a number > 0")
    memory_auto_checkpoint_minutes: float = Field(60.0, gt=0, description="minutes, a number > 0")
    memory_history_size: int = Field(1440, ge=2, description="samples kept, a whole number >= 2")
    memory_trend_window_minutes: float = Field(60.0, gt=0, description="minutes, a number > 0")
    memory_checkpoint_retention: int = _positive_int(50)
    memory_limit_mb: int | None = Field(None, ge=1, description="MiB, a whole number >= 1, or empty")
    memory_max_consecutive_errors: int = _positive_int(5)
    memory_gc_generation: int = Field(1, ge=0, le=2, description="0, 1 or 2")

    # Who may use /mem, and where alerts go
    memory_admin_user_ids: IdList = Field(default_factory=list, description="comma-separated user ids")
    memory_admin_role_ids: IdList = Field(default_factory=list, description="comma-separated role ids")
    memory_admin_guild_ids: IdList = Field(default_factory=list, description="comma-separated guild ids")
    memory_alert_channel_id: int | None = Field(None, ge=1, description="a channel id, or empty")

    # Alert rules
    alert_memory_percent: float = Field(80.0, gt=0, le=100, description="percent, > 0 and <= 100")
    alert_critical_memory_percent: float = Field(95.0, gt=0, le=100, description="percent, > 0 and <= 100")
    alert_pool_overflow_percent: float = Field(50.0, gt=0, le=100, description="percent, > 0 and <= 100")
    alert_dict_fill_percent: float = Field(80.0, gt=0, le=100, description="percent, > 0 and <= 100")
    alert_checkpoint_growth_percent: float = Field(20.0, gt=0, description="percent, a number > 0")
    alert_leak_horizon_hours: float = Field(24.0, gt=0, description="hours, a number > 0")
    alert_leak_min_mib_per_hour: float = Field(1.0, ge=0, description="MiB/hour, a number >= 0")
    alert_for_checks: int = _positive_int(3)
    alert_repeat_minutes: float = Field(60.0, gt=0, description="minutes, a number > 0")
    alert_hysteresis_percent: float = Field(5.0, ge=0, description="percentage points, a number >= 0")
    alert_history_size: int = _positive_int(500)

    # HTTP health and metrics endpoints
    health_port: int | None = Field(None, ge=0, le=65535, description="a port 0-65535, or empty (off)")
    health_host: str = Field("127.0.0.1", description="an address to bind")
    health_token: SecretStr | None = Field(None, description="a bearer token, or empty (open)")
    health_max_loop_lag_ms: float = Field(1000.0, gt=0, description="milliseconds, a number > 0")
    metrics_instance: str = Field("polly", min_length=1, description="a label value naming this process")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        driver = _SCHEME_DRIVERS.get(scheme.lower())
        if not sep or driver is None:
            raise ValueError("unknown URL scheme")
        return f"{driver}://{rest}"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("unknown log level")
        return level

    @field_validator("memory_admin_user_ids", "memory_admin_role_ids", "memory_admin_guild_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator(
        "discord_token",
        "memory_limit_mb",
        "memory_alert_channel_id",
        "health_port",
        "health_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

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


def _describe(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else "?"
    info = Settings.model_fields.get(field)
    allowed = info.description if info is not None and info.description else "see .env.example"
    value = error.get("input")
    shown = "<hidden>" if field in {"discord_token", "health_token"} else repr(value)
    reason = str(error["msg"]).removeprefix("Value error, ")
    return f"{field.upper()}={shown} is not allowed ({reason}); allowed: {allowed}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and `.env`; raise ConfigError with one line if invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("Invalid setting: " + "; ".join(_describe(e) for e in exc.errors())) from None
