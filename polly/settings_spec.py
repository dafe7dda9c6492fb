"""How settings are read: value readers, the `Spec` of one setting (reader, range, what is allowed)
and the field helpers `polly.config.Settings` is declared with."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from polly.records import record

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
MEMBER_CACHE_CHOICES = ("none", "voice", "joined", "all")


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


def read_whole(value: Any) -> int:
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


def read_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def read_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not true or false")


def read_ids(value: Any) -> list[int]:
    parts = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    ids = []
    for part in parts:
        if isinstance(part, str) and not part.strip():
            continue
        try:
            ids.append(read_whole(part))
        except ValueError:
            raise ValueError(f"{str(part).strip()!r} is not an id") from None
    return ids


def read_text(value: Any) -> str:
    return str(value)


INSTANCE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def read_instance_name(value: Any) -> str:
    text = str(value).strip()
    if not INSTANCE_NAME.fullmatch(text):
        raise ValueError("use 1-64 letters, digits, '.', '_' or '-'")
    return text


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def read_bind_host(value: Any) -> str:
    """An IP address or a host name to bind; `999.1.1.1` is neither."""
    host = str(value).strip()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or labels[-1].isdigit() or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError("not an IP address or a host name")
    return host


def read_secret(value: Any) -> Secret:
    return value if isinstance(value, Secret) else Secret(str(value))


HEALTH_TOKEN_MIN_LENGTH = 16
# A bot token: the bot's id in base64, a timestamp, an HMAC, joined by dots (about 70 characters).
DISCORD_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{18,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{20,}")


def read_discord_token(value: Any) -> Secret:
    """A value that can be a bot token: refused at start otherwise (a one-letter token would be
    "redacted" in every log line, and Discord would refuse it anyway)."""
    token = read_secret(value)
    text = token.get_secret_value().strip()
    if text.lower().startswith("bot "):
        raise ValueError("it starts with 'Bot ': give the token alone")
    if not DISCORD_TOKEN_SHAPE.fullmatch(text):
        raise ValueError("not the shape of a bot token: three parts joined by dots, about 70 characters")
    return Secret(text)


def read_bearer_token(value: Any) -> Secret:
    """A token for the HTTP endpoints: long enough that it cannot be guessed, and that hiding it
    in log lines does not garble them (a one-letter token would be "redacted" everywhere)."""
    token = read_secret(value)
    if len(token.get_secret_value()) < HEALTH_TOKEN_MIN_LENGTH:
        raise ValueError(f"shorter than {HEALTH_TOKEN_MIN_LENGTH} characters")
    return token


_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd)=)[^&#]*")


def masked_url(value: Any) -> str:
    """The URL with its password replaced by `***` (`postgresql://polly:***@db/polly`): what an
    error may quote. In a URL SQLAlchemy cannot parse (often a password with an unescaped `@`),
    everything between the user name and the last `@` is hidden."""
    text = _QUERY_PASSWORD.sub(r"\1***", str(value))  # asyncpg takes ?password=... too
    try:
        return repr(make_url(text).render_as_string(hide_password=True).replace("%2A%2A%2A", "***"))
    except (ArgumentError, ValueError):
        scheme, sep, rest = text.partition("://")
        credentials, at, location = rest.rpartition("@")
        if not sep or not at or ":" not in credentials:
            return repr(text)
        return repr(f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}")


def url_password(url: str) -> str | None:
    """The password in a database URL, if it has one."""
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def read_database_url(value: Any) -> str:
    """A database URL as SQLAlchemy reads it, with Polly's async driver for its scheme."""
    try:
        url = make_url(str(value).strip())
    except ArgumentError:
        raise ValueError("not a URL (scheme://user:password@host:port/database)") from None
    except ValueError:  # SQLAlchemy parses the port as a number
        raise ValueError(
            "the port is not a number 1-65535 (a password with @, : or / must be percent-encoded)"
        ) from None
    driver = _SCHEME_DRIVERS.get(url.drivername.lower())
    if driver is None:
        raise ValueError("unknown URL scheme")
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError("the port is not a number 1-65535")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def read_member_cache(value: Any) -> str:
    choice = str(value).strip().lower()
    if choice not in MEMBER_CACHE_CHOICES:
        raise ValueError("unknown member cache")
    return choice


def read_log_level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError("unknown log level")
    return level


@record
class Spec:
    """How one setting is read and what it allows."""

    read: Callable[[Any], Any]
    allowed: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be above `low`, not equal to it
    optional: bool = False  # True: empty means None; False: empty means the default
    secret: bool = False
    shown: Callable[[Any], str] = repr  # how an error quotes a refused value

    def parse(self, value: Any) -> Any:
        result = self.read(value)
        if self.low is not None and (result < self.low or (self.low_open and result == self.low)):
            raise ValueError(f"{'at or ' if self.low_open else ''}below {self.low:g}")
        if self.high is not None and result > self.high:
            raise ValueError(f"above {self.high:g}")
        if self.read is read_text and not result:
            raise ValueError("empty")
        return result


def setting(default: Any, spec: Spec) -> Any:
    if isinstance(default, list):
        return field(default_factory=list, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def whole(default: int | None, allowed: str = "a whole number >= 1", low: int | None = 1, **kw: Any) -> Any:
    return setting(default, Spec(read_whole, allowed, low, **kw))


def number(default: float, allowed: str, low: float | None = None, **kw: Any) -> Any:
    return setting(default, Spec(read_number, allowed, low, **kw))


def percent(default: float) -> Any:
    return number(default, "percent, > 0 and <= 100", 0, low_open=True, high=100)


def flag(default: bool) -> Any:
    return setting(default, Spec(read_bool, "true or false"))


def id_list(allowed: str) -> Any:
    return setting([], Spec(read_ids, allowed))


# Thresholds the hysteresis is subtracted from: at or above one of them, that alert could never resolve.
HYSTERESIS_BOUNDED = (
    "alert_memory_percent",
    "alert_pool_overflow_percent",
    "alert_dict_fill_percent",
    "alert_checkpoint_growth_percent",
    "alert_memory_pressure_percent",
)


def hysteresis_conflict(hysteresis: float, thresholds: dict[str, float], prefix: str = "") -> str | None:
    """Why this hysteresis would keep an alert from resolving, or None."""
    for name in HYSTERESIS_BOUNDED:
        if hysteresis >= thresholds[name]:
            return (
                f"the hysteresis ({hysteresis:g} points) must stay below {prefix}{name.upper()} "
                f"({thresholds[name]:g}), "
                "or that alert could never resolve"
            )
    return None
