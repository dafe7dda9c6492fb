"""Settings: defaults, .env loading, and the one-line error for every invalid value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polly.config import DEFAULT_DATABASE_URL, ConfigError, Settings, load_settings, setting_names
from tests.conftest import REPO_ROOT
from tests.settings import FAKE_TOKEN


def test_defaults_match_the_documented_values(tmp_path, monkeypatch):
    """With nothing set, every setting has the default that .env.example documents."""
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.database_url == DEFAULT_DATABASE_URL
    assert (s.pool_size(), s.max_overflow(), s.db_pool_timeout, s.db_pool_recycle) == (1, 0, 30.0, 3600)
    assert s.db_echo is False
    assert (s.max_failure_entries, s.failure_cleanup_age) == (1000, 60)
    assert s.memory_monitoring is True
    assert s.discord_token is None
    assert s.memory_admin_guild_ids == []


def test_every_setting_is_documented_in_env_example():
    """.env.example lists every variable the settings object reads."""
    text = (REPO_ROOT / ".env.example").read_text()
    missing = [name for name in setting_names() if f"{name}=" not in text]
    assert missing == []


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    """Values in ./.env are loaded, lists split on commas, URLs normalised to async drivers."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DB_POOL_SIZE=4\nMEMORY_ADMIN_USER_IDS=1, 2,3\nDATABASE_URL=postgresql://u@h/db\nDISCORD_TOKEN="
        + FAKE_TOKEN
        + "\n"
    )
    s = load_settings()
    assert s.db_pool_size == 4
    assert s.memory_admin_user_ids == [1, 2, 3]
    assert s.database_url == "postgresql+asyncpg://u@h/db"
    assert s.discord_token is not None and s.discord_token.get_secret_value() == FAKE_TOKEN


def test_environment_overrides_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DB_POOL_SIZE=4\n")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert load_settings().db_pool_size == 7


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("DB_POOL_SIZE", "abc", "a whole number 1-1000"),
        ("DB_POOL_SIZE", "-1", "a whole number 1-1000"),
        ("DB_MAX_OVERFLOW", "-3", "a whole number 0-1000"),
        ("DB_POOL_TIMEOUT", "0", "seconds, > 0 and <= 3600"),
        # values that once passed and then broke every tick or killed the loop at start
        ("MEMORY_CHECK_INTERVAL_SECONDS", "1e12", "seconds, 1 to 3600"),
        ("MEMORY_CLEANUP_INTERVAL_MINUTES", "1e13", "minutes, > 0 and <= 10080"),
        ("MEMORY_AUTO_CHECKPOINT_MINUTES", "1e13", "minutes, > 0 and <= 10080"),
        ("MAX_FAILURE_ENTRIES", "1e20", "entries, a whole number 1-10000000"),
        ("HEALTH_HOST", "999.1.1.1", "an IP address or a host name to bind"),
        ("HEALTH_HOST", "bad host!", "an IP address or a host name to bind"),
        ("DATABASE_URL", "postgresql://polly@db:notaport/polly", "the port is not a number 1-65535"),
        ("DATABASE_URL", "postgresql://polly@db:70000/polly", "the port is not a number 1-65535"),
        ("DATABASE_URL", "mysql://user@host/db", "a sqlite:// or postgresql:// URL"),
        ("MEMORY_ADMIN_USER_IDS", "12,bob", "comma-separated user ids"),
        ("ALERT_MEMORY_PERCENT", "120", "percent, > 0 and <= 100"),
        ("POLL_CHECK_INTERVAL_MINUTES", "1e-7", "minutes, 1 to 1440"),  # checked polls back to back
    ],
)
def test_invalid_value_is_one_line_naming_variable_value_and_allowed(tmp_path, monkeypatch, variable, value, allowed):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert variable in message
    assert allowed in message
    # the bad value itself is quoted (list values are shown after splitting)
    assert value.split(",")[-1] in message


def run_bot_process(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_", "DISCORD_"))}
    clean.update(env, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DB_POOL_SIZE", "abc"), ("DB_POOL_SIZE", "-1"), ("DATABASE_URL", "mysql://x/y")],
)
def test_python_m_bot_exits_2_with_one_line_for_invalid_value(tmp_path, variable, value):
    result = run_bot_process(tmp_path, **{variable: value, "DISCORD_TOKEN": FAKE_TOKEN})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_python_m_bot_without_token_says_how_to_set_one_and_exits_2(tmp_path):
    result = run_bot_process(tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "DISCORD_TOKEN" in lines[0] and ".env" in lines[0]
    assert "Traceback" not in result.stderr


def test_secrets_never_show_in_repr_or_errors(tmp_path, monkeypatch):
    """The token's value is readable only through get_secret_value(), never in repr or an error."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HEALTH_TOKEN", "another-secret-value-123")
    settings = load_settings()
    assert "only-its-shape" not in repr(settings)
    assert "another-secret" not in repr(settings) + str(settings.health_token)
    assert settings.discord_token.get_secret_value() == FAKE_TOKEN


def test_empty_values_mean_unset_as_env_example_says(tmp_path, monkeypatch):
    """`NAME=` takes the default (or None where the setting is optional), as .env.example documents."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DB_POOL_SIZE=\nMEMORY_LIMIT_MB=\nHEALTH_PORT=\nMEMORY_ADMIN_USER_IDS=\n")
    s = load_settings()
    assert (s.db_pool_size, s.memory_limit_mb, s.health_port, s.memory_admin_user_ids) == (None, None, None, [])


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "true"])
def test_non_finite_numbers_are_refused(tmp_path, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMORY_CHECK_INTERVAL_SECONDS", value)
    with pytest.raises(ConfigError, match="MEMORY_CHECK_INTERVAL_SECONDS"):
        load_settings()


@pytest.mark.parametrize(("text", "expected"), [("yes", True), ("On", True), ("0", False), ("false", False)])
def test_booleans_read_the_usual_spellings(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEMORY_MONITORING", text)
    assert load_settings().memory_monitoring is expected


def test_every_error_is_reported_at_once_on_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DB_POOL_SIZE", "0")
    monkeypatch.setenv("HEALTH_PORT", "70000")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message and "DB_POOL_SIZE='0'" in message and "HEALTH_PORT='70000'" in message


def test_replaced_validates_the_new_values(tmp_path):
    settings = load_settings(env_file=None)
    assert settings.replaced(db_pool_size=3).db_pool_size == 3
    with pytest.raises(ConfigError, match="DB_POOL_SIZE"):
        settings.replaced(db_pool_size=0)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://polly:Hunter2pw@db/polly", "'mysql://polly:***@db/polly'"),
        ("postgresql://u:p@ss:w@rd@host:5432/db", "'postgresql://u:***@host:5432/db'"),
        ("postgresql://polly@db/polly", "'postgresql://polly@db/polly'"),
        ("sqlite:///./data/polly.db", "'sqlite:///./data/polly.db'"),
        # asyncpg reads a password from the query too
        (
            "postgresql://polly@db:notaport/polly?password=Hunter2pw",
            "'postgresql://polly@db:notaport/polly?password=***'",
        ),
        (
            "postgresql://polly@db/polly?ssl=require&PASSWORD=Hunter2pw",
            "'postgresql://polly@db/polly?PASSWORD=***&ssl=require'",
        ),
    ],
)
def test_urls_are_quoted_without_their_password(url, shown):
    from polly.settings_spec import masked_url

    assert masked_url(url) == shown


def test_a_short_health_token_is_refused_without_showing_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEALTH_TOKEN", "e")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "HEALTH_TOKEN=<hidden>" in message and "16 characters" in message
    monkeypatch.setenv("HEALTH_TOKEN", "a-token-of-16-ch")
    assert load_settings().health_token.get_secret_value() == "a-token-of-16-ch"


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "metrics.internal", "bot-1"])
def test_bind_hosts_that_are_allowed(tmp_path, monkeypatch, host):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEALTH_HOST", host)
    assert load_settings().health_host == host


def test_a_bad_port_in_the_database_url_is_refused_without_its_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://polly:Hunter2pw@db:notaport/polly")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "Hunter2pw" not in str(info.value) and "polly:***@db:notaport" in str(info.value)


def test_settings_are_frozen_and_the_only_source_of_threshold_defaults():
    import dataclasses

    from polly.alerts import Thresholds

    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.alert_memory_percent = 50.0  # type: ignore[misc]
    changed = dataclasses.replace(settings, alert_memory_percent=50.0)
    assert Thresholds.from_settings(changed).memory_percent == 50.0
    assert Thresholds.default() == Thresholds.from_settings(settings)
    assert not any(f.default is not dataclasses.MISSING for f in dataclasses.fields(Thresholds))


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./data/polly.db", "data/polly.db"),
        ("sqlite+aiosqlite:////var/lib/polly/polly.db", "/var/lib/polly/polly.db"),
        ("sqlite:///file:bot.db?uri=true", "bot.db"),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:x?mode=memory&uri=true", None),
        ("sqlite://", None),
        ("postgresql://polly@db/polly", None),
    ],
)
def test_database_urls_are_read_by_sqlalchemy(url, path):
    from polly.settings_spec import read_database_url

    settings = Settings(database_url=read_database_url(url))
    assert settings.sqlite_path() == (None if path is None else Path(path))
    assert settings.is_sqlite == url.startswith("sqlite")


def test_a_percent_encoded_password_is_read_decoded_and_never_shown():
    from polly.settings_spec import masked_url, read_database_url, url_password

    url = read_database_url("postgres://polly:p%40ss%3Aw@db:5433/polly")
    assert url.startswith("postgresql+asyncpg://polly:") and url_password(url) == "p@ss:w"
    assert masked_url(url) == "'postgresql+asyncpg://polly:***@db:5433/polly'"
    with pytest.raises(ValueError, match="port is not a number 1-65535"):
        read_database_url("postgresql://polly@db:70000/polly")


@pytest.mark.parametrize("variable", ["INSTANCE_NAME", "METRICS_INSTANCE", "HEALTH_TOKEN"])
def test_bytes_that_are_not_utf8_in_a_variable_are_one_line_and_exit_2(tmp_path, variable):
    """The environment's undecodable bytes (surrogateescape) used to end in a traceback and exit 1."""
    clean = {k: v for k, v in os.environ.items() if k not in setting_names()}
    env = {os.fsencode(k): os.fsencode(v) for k, v in clean.items()}
    env[variable.encode()] = b"bot-\xff\xfe-name-long-enough-for-a-token"
    env[b"PYTHONPATH"] = os.fsencode(REPO_ROOT)
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err
    assert variable in err and "not UTF-8" in err and "Traceback" not in err
    if variable == "HEALTH_TOKEN":
        assert "<hidden>" in err


def test_a_settings_file_that_is_not_utf8_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(b"INSTANCE_NAME=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"Invalid settings file \.env: byte 17 is not UTF-8; save it as UTF-8"):
        load_settings()


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("e", "not the shape of a bot token"),
        ("abc.def", "not the shape of a bot token"),
        (f"Bot {FAKE_TOKEN}", "starts with 'Bot '"),
        ("MTAwMDAwMDAwMDAwMDAwMDAw GAbCdE not-a-real-token", "not the shape of a bot token"),
    ],
)
def test_a_value_that_cannot_be_a_token_is_refused_in_one_line_without_showing_it(token, why):
    """A one-letter DISCORD_TOKEN used to be "redacted" letter by letter in every log line."""
    with pytest.raises(ConfigError) as refused:
        load_settings(env_file=None, environ={"DISCORD_TOKEN": token})
    said = str(refused.value)
    assert "DISCORD_TOKEN=<hidden>" in said and why in said and "developer portal" in said
    assert len(token) < 3 or token not in said  # never shown (a letter is in any sentence)


def test_one_setting_is_read_from_the_environment_then_dotenv_else_its_default(tmp_path, monkeypatch):
    from polly.config import environment_setting

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAX_FAILURE_ENTRIES", raising=False)
    monkeypatch.delenv("FAILURE_CLEANUP_AGE", raising=False)
    assert (environment_setting("max_failure_entries"), environment_setting("failure_cleanup_age")) == (1000, 60)
    (tmp_path / ".env").write_text("MAX_FAILURE_ENTRIES=250\nFAILURE_CLEANUP_AGE=lots\n")
    assert environment_setting("max_failure_entries") == 250  # from .env
    assert environment_setting("failure_cleanup_age") == 60  # invalid there: the default, reported at start
    monkeypatch.setenv("MAX_FAILURE_ENTRIES", "75")
    assert environment_setting("max_failure_entries") == 75  # the environment wins, as in load_settings
    monkeypatch.setenv("MAX_FAILURE_ENTRIES", "0")
    assert environment_setting("max_failure_entries") == 1000  # below its range: the default
