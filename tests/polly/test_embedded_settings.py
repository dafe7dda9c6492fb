"""Embedded settings: POLLY_ variables and a host's overrides, never the host's own variables or .env."""

from __future__ import annotations

import pytest

from polly.config import ConfigError
from polly.host_settings import EMBEDDED_DATABASE_URL, embedded_settings


def test_only_polly_prefixed_variables_are_read():
    settings = embedded_settings(
        environ={
            "DATABASE_URL": "postgresql://host:secret@db/hostdb",  # the host's: never read
            "MEMORY_CHECK_INTERVAL_SECONDS": "5",
            "DISCORD_TOKEN": "host-token",
            "POLLY_MEMORY_CHECK_INTERVAL_SECONDS": "30",
            "POLLY_MEMORY_ALERT_CHANNEL_ID": "123",
        }
    )
    assert settings.database_url == EMBEDDED_DATABASE_URL  # Polly's own SQLite file
    assert settings.memory_check_interval_seconds == 30
    assert settings.memory_alert_channel_id == 123
    assert settings.discord_token is None
    assert settings.variable("health_port") == "POLLY_HEALTH_PORT"


def test_the_hosts_dotenv_file_is_never_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("POLLY_MEMORY_CHECK_INTERVAL_SECONDS=7\nDATABASE_URL=sqlite:///host.db\n")
    monkeypatch.chdir(tmp_path)
    settings = embedded_settings(environ={})
    assert settings.memory_check_interval_seconds == 60 and settings.database_url == EMBEDDED_DATABASE_URL


def test_polly_own_bot_settings_are_ignored_when_embedded():
    """The host decides its token, discord.py's caches, shards: POLLY_ versions of them do nothing."""
    settings = embedded_settings(
        environ={"POLLY_DISCORD_MAX_MESSAGES": "not even a number", "POLLY_SHARD_COUNT": "4"},
        discord_member_cache="all",
    )
    assert settings.discord_max_messages == 0 and settings.shard_count is None
    assert settings.discord_member_cache == "none"


def test_overrides_win_over_the_environment_and_are_validated_alike():
    settings = embedded_settings(environ={"POLLY_ALERT_MEMORY_PERCENT": "70"}, alert_memory_percent=75)
    assert settings.alert_memory_percent == 75
    with pytest.raises(ConfigError, match=r"POLLY_ALERT_MEMORY_PERCENT=150 is not allowed \(above 100\)"):
        embedded_settings(environ={}, alert_memory_percent=150)


def test_a_bad_variable_is_named_with_its_prefix_and_what_is_allowed():
    with pytest.raises(ConfigError) as caught:
        embedded_settings(environ={"POLLY_MEMORY_CHECK_INTERVAL_SECONDS": "0", "POLLY_DATABASE_URL": "mysql://x"})
    message = str(caught.value)
    assert "POLLY_MEMORY_CHECK_INTERVAL_SECONDS='0' is not allowed (below 1); allowed: seconds, 1 to 3600" in message
    assert "POLLY_DATABASE_URL='mysql://x' is not allowed (unknown URL scheme)" in message
    assert "\n" not in message


def test_an_unknown_override_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown setting memory_chek_interval"):
        embedded_settings(environ={}, memory_chek_interval=5)


def test_a_hysteresis_conflict_names_the_prefixed_variables():
    with pytest.raises(ConfigError, match=r"POLLY_ALERT_HYSTERESIS_PERCENT=30 .*POLLY_ALERT_DICT_FILL_PERCENT"):
        embedded_settings(environ={"POLLY_ALERT_HYSTERESIS_PERCENT": "30", "POLLY_ALERT_DICT_FILL_PERCENT": "25"})


def test_the_packages_names_stay_what_they_are_once_every_module_is_imported():
    """A submodule named like one of the package's lazy names would replace it on import."""
    import importlib
    import pkgutil

    import polly

    for module in pkgutil.iter_modules(polly.__path__):
        if module.name not in ("ext", "offline"):
            importlib.import_module(f"polly.{module.name}")
    assert callable(polly.embedded_settings) and callable(polly.configure) and isinstance(polly.MemoryCog, type)
