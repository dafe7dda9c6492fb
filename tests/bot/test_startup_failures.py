"""`python -m bot` when what it needs is wrong or away: one line naming what failed and what to
check, exit 2 for configuration and 1 for an outage, no traceback (that goes to the DEBUG log),
no password."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from polly.config import setting_names
from polly.settings_spec import url_password
from tests.conftest import REPO_ROOT
from tests.settings import FAKE_TOKEN


def run_bot(tmp_path: Path, *args: str, driver: str | None = None, **settings: str) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in setting_names()}
    env.update(PYTHONPATH=str(REPO_ROOT), DISCORD_TOKEN=FAKE_TOKEN, **settings)
    command = [sys.executable, "-c", driver] if driver else [sys.executable, "-m", "bot", *args]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    return result.returncode, (result.stdout + result.stderr).strip().splitlines()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_one_line(lines: list[str], *expected: str) -> None:
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0] and "ERROR" in lines[0]
    for text in expected:
        assert text in lines[0], lines[0]


def test_an_unreachable_postgresql_is_an_outage(tmp_path):
    url = f"postgresql://polly:Hunter2pw@127.0.0.1:{closed_port()}/polly"
    code, lines = run_bot(tmp_path, DATABASE_URL=url)
    assert code == 1
    assert_one_line(lines, "DATABASE_URL=", "polly:***@127.0.0.1", "cannot be reached", "is the server running")
    assert "Hunter2pw" not in lines[0]


def test_an_unresolvable_database_host_is_an_outage(tmp_path):
    code, lines = run_bot(tmp_path, DATABASE_URL="postgresql://polly:Hunter2pw@db.invalid:5432/polly")
    assert code == 1
    assert_one_line(lines, "host name cannot be resolved", "DNS")
    assert "Hunter2pw" not in lines[0]


def test_a_wrong_postgresql_password_is_configuration(tmp_path, postgres_url):
    password = url_password(postgres_url)
    if password is None:
        pytest.skip("TEST_POSTGRES_URL has no password to get wrong (.ci/postgres.sh sets one)")
    url = postgres_url.replace(f":{password}@", ":Wrong-Pass-123@")
    code, lines = run_bot(tmp_path, DATABASE_URL=url)
    assert code == 2
    assert_one_line(lines, "refused the user or password", "check both in DATABASE_URL")
    assert "Wrong-Pass-123" not in lines[0] and password not in lines[0]


def test_a_missing_postgresql_database_is_configuration(tmp_path, postgres_url):
    url = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    code, lines = run_bot(tmp_path, DATABASE_URL=url)
    assert code == 2
    assert_one_line(lines, 'database "no_such_db" does not exist', "createdb")


@pytest.mark.parametrize("case", ["parent is a file", "path is a folder", "not a database"])
def test_an_unusable_sqlite_path_is_configuration(tmp_path, case):
    if case == "parent is a file":
        (tmp_path / "file").write_text("x")
        path = tmp_path / "file" / "polly.db"
    elif case == "path is a folder":
        path = tmp_path / "folder"
        path.mkdir()
    else:
        path = tmp_path / "notes.txt"
        path.write_text("these are not the tables you are looking for\n" * 100)
    code, lines = run_bot(tmp_path, DATABASE_URL=f"sqlite:///{path}")
    assert code == 2
    assert_one_line(lines, "DATABASE_URL=", str(path))


def test_a_read_only_sqlite_file_is_said_read_only_not_not_a_database(tmp_path):
    """Tests run as root, which ignores file modes: SQLite's own read-only mode makes it so."""
    import sqlite3

    path = tmp_path / "polly.db"
    sqlite3.connect(path).close()
    code, lines = run_bot(tmp_path, DATABASE_URL=f"sqlite:///file:{path}?mode=ro&uri=true")
    assert code == 2
    assert_one_line(lines, "is read-only", "writable by this user")
    assert "cannot be used as a SQLite database" not in lines[0]


# The real launcher and discord.py, with Discord's API address pointing where nothing listens.
UNREACHABLE_DISCORD = """
import sys
import discord.http
from bot import launcher

discord.http.Route.BASE = "http://127.0.0.1:{port}/api/v10"
sys.exit(launcher.main([]))
"""


def test_an_unreachable_discord_is_an_outage(tmp_path):
    driver = UNREACHABLE_DISCORD.format(port=closed_port())
    code, lines = run_bot(tmp_path, driver=driver, DATABASE_URL=f"sqlite:///{tmp_path / 'polly.db'}")
    assert code == 1
    assert not any("Traceback" in line or FAKE_TOKEN in line for line in lines), lines
    # Start-up's INFO lines ("logging in using static token") come first; then the one problem.
    problems = [line for line in lines if not re.search(r"\bINFO\b", line)]
    assert_one_line(problems, "Discord cannot be reached", "network")


def test_the_offline_console_with_a_busy_health_port_says_so(tmp_path):
    pytest.importorskip("simcord")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, lines = run_bot(
            tmp_path, "--offline", HEALTH_PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'polly.db'}"
        )
    assert code == 2
    assert lines[0] == "Database: DATABASE_URL (kept between sessions)"  # the session's first line
    assert_one_line(lines[1:], f"HEALTH_PORT={port}", "choose another port")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS=0,1 is not allowed (it needs SHARD_COUNT"),
        (
            {"SHARD_COUNT": "4", "SHARD_IDS": "1,4"},
            "SHARD_IDS=1,4 is not allowed (4 not below SHARD_COUNT=4); allowed: 0 to 3",
        ),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "2,2"}, "SHARD_IDS=2,2 is not allowed (a shard is listed twice)"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "-1"}, "SHARD_IDS=-1 is not allowed"),
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT='0' is not allowed (below 1)"),
        ({"INSTANCE_NAME": "eu 1/bad"}, "INSTANCE_NAME='eu 1/bad' is not allowed (use 1-64 letters, digits"),
    ],
)
def test_sharding_settings_discord_would_refuse_stop_start_up_with_one_line(tmp_path, settings, expected):
    code, lines = run_bot(tmp_path, **settings)
    assert code == 2
    assert_one_line(lines, expected)
