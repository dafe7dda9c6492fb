"""Starting `python -m bot --offline` as its own process, stdin kept open (the console waits and
the bot runs), with settings from the test and none from the machine's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

OWN_SETTINGS = ("DB_", "DATABASE_", "DISCORD_", "MEMORY_", "HEALTH_", "INSTANCE_", "FLEET_", "ALERT_")


def start_offline(cwd: Path, *, stdout: int | None = subprocess.PIPE, **settings: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    env.update(PYTHONPATH=str(REPO_ROOT), **settings)
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--offline"],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout == subprocess.PIPE else subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        text=True,
    )
