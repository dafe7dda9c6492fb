"""Settings of the extension inside any bot: `POLLY_` variables and a host's overrides, validated
like Polly's own bot's (same table, ranges and one-line errors), never the host's own variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from polly.config import SETTING_SPECS, ConfigError, Settings, is_empty, load_settings

# Embedded in another bot (`load_extension("polly")`): settings come from POLLY_-prefixed variables,
# never the host's own DATABASE_URL, DISCORD_TOKEN or .env, and Polly keeps its own SQLite file.
EMBEDDED_PREFIX = "POLLY_"
EMBEDDED_DATABASE_URL = "sqlite+aiosqlite:///./data/polly-memory.db"
# Settings of Polly's own bot (its token, discord.py's caches, its poll upkeep, its shards): a host
# bot decides these itself, so embedded they are never read.
HOST_ONLY_SETTINGS = (
    "discord_token",
    "log_level",
    "discord_max_messages",
    "discord_member_cache",
    "discord_members_intent",
    "discord_chunk_guilds_at_startup",
    "max_failure_entries",
    "failure_cleanup_age",
    "poll_check_interval_minutes",
    "shard_count",
    "shard_ids",
)


def embedded_settings(*, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings of the extension inside any bot: POLLY_-prefixed variables, then `overrides`.

    Never reads `.env` nor an unprefixed variable; Polly's own bot's settings (HOST_ONLY_SETTINGS)
    are the host's business and left at their defaults; the database is Polly's own SQLite file
    (EMBEDDED_DATABASE_URL) unless POLLY_DATABASE_URL or `database_url=` says otherwise."""
    environ = os.environ if environ is None else environ
    unknown = sorted(set(overrides) - set(SETTING_SPECS))
    if unknown:
        raise ConfigError(f"Invalid setting: unknown setting {', '.join(unknown)} (see the README's settings table)")
    ours = {
        key: value
        for key, value in environ.items()
        if key.upper().startswith(EMBEDDED_PREFIX)
        and key.upper()[len(EMBEDDED_PREFIX) :].lower() not in HOST_ONLY_SETTINGS
    }
    overrides = {name: value for name, value in overrides.items() if name not in HOST_ONLY_SETTINGS}
    if is_empty(ours.get(f"{EMBEDDED_PREFIX}DATABASE_URL")) and "database_url" not in overrides:
        overrides["database_url"] = EMBEDDED_DATABASE_URL
    return load_settings(env_file=None, environ=ours, prefix=EMBEDDED_PREFIX, **overrides)
