"""`python -m bot` as a process: SIGINT/SIGTERM close it cleanly.

There is no Discord to connect to here, so the child replaces only `PollyBot.start`'s network part
(login and gateway) with a wait; setup (database, extensions, monitor loop, health server) and the
whole shutdown path are the real ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from polly.config import setting_names
from tests.conftest import REPO_ROOT
from tests.settings import FAKE_TOKEN

DRIVER = """
import asyncio, sys
from bot.app import PollyBot
from bot import launcher

async def start_without_network(self, token, *, reconnect=True):
    async def no_sync(*args, **kwargs):
        return []
    self.tree.sync = no_sync  # syncing needs Discord
    await self._async_setup_hook()
    await self.setup_hook()
    print("STARTED", flush=True)
    while not self.is_closed():  # like the gateway connection, which ends when the bot closes
        await asyncio.sleep(0.05)

PollyBot.start = start_without_network
sys.exit(launcher.main([]))
"""


def start_child(tmp_path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_", "MEMORY_", "HEALTH_"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        DISCORD_TOKEN=FAKE_TOKEN,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'polly.db'}",
        HEALTH_PORT="0",
        PYTHONASYNCIODEBUG="1",
    )
    child = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    assert child.stdout is not None
    while time.monotonic() < deadline:
        if child.stdout.readline().strip() == "STARTED":
            return child
    child.kill()
    raise AssertionError("the bot did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_the_bot_cleanly(tmp_path, sig):
    child = start_child(tmp_path)
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert "Shutdown signal received" in stderr
    assert "Health endpoints stopped" in stderr
    assert "Database engine disposed" in stderr
    assert "Task was destroyed but it is pending" not in stderr
    assert "Traceback" not in stderr
    assert "not-a-real-token" not in stderr


@pytest.mark.parametrize(
    "url",
    ["mysql://polly:Hunter2pw@db/polly", "postgresql+psycopg2://polly:Hunter2pw@db:5432/polly"],
)
def test_a_refused_database_url_is_quoted_without_its_password(tmp_path, url):
    env = {k: v for k, v in os.environ.items() if k not in setting_names()}
    env.update(DISCORD_TOKEN=FAKE_TOKEN, DATABASE_URL=url)
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Hunter2pw" not in output
    assert "DATABASE_URL=" in output and "polly:***@db" in output


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MEMORY_CHECK_INTERVAL_SECONDS", "1e12"), ("MEMORY_CLEANUP_INTERVAL_MINUTES", "1e13"), ("HEALTH_TOKEN", "e")],
)
def test_a_setting_beyond_its_bounds_stops_start_up_with_one_line(tmp_path, variable, value):
    """These once passed validation and then killed the loop or broke every tick."""
    env = {k: v for k, v in os.environ.items() if k not in setting_names()}
    env.update({"DISCORD_TOKEN": FAKE_TOKEN, variable: value, "PYTHONPATH": str(REPO_ROOT)})
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in lines[0]
