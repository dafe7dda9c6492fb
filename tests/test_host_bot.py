"""A third-party bot installs Polly's wheel and loads it with one line (examples/host_bot/).

Built and installed for real: `uv build`, a fresh virtual environment with the wheel and SimCord
only, the example bot copied next to a script that drives it (tests/host_bot/check_in_simcord.py),
nothing of this repository on the path: the host's own `bot.py` and `cogs/` are the ones imported.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed (the README's commands need it)")


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel and sdist `uv build` makes from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    result = run(UV, "build", "--wheel", "--sdist", "--out-dir", out, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


@pytest.fixture(scope="module")
def host_venv(built, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel and its `offline` extra (SimCord), nothing else."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv") / "venv"
    assert run(UV, "venv", "--python", sys.executable, venv).returncode == 0
    python = venv / "bin" / "python"
    result = run(UV, "pip", "install", "--python", python, f"{wheel}[offline]")
    assert result.returncode == 0, result.stderr
    return python


def host_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "host_bot"
    shutil.copytree(REPO_ROOT / "examples" / "host_bot", folder, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (nothing of this repository), no settings of this machine or of the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "POLLY_", "VIRTUAL_ENV", "UV_"))}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_wheel_holds_only_the_polly_package(built):
    wheel, sdist = built
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"polly"}
    assert "polly/ext/cog.py" in names and "polly/offline/__main__.py" in names
    assert not [n for n in names if n.endswith("ruff.toml")]
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: polly-memory-ops" in text
    for extra in ("postgres", "charts", "offline"):
        assert f"Provides-Extra: {extra}" in text
    assert sdist.name.startswith("polly_memory_ops-")


def test_a_third_party_bot_gets_mem_and_keeps_everything_of_its_own(host_venv, tmp_path):
    folder = host_copy(tmp_path)
    shutil.copy(REPO_ROOT / "tests" / "host_bot" / "check_in_simcord.py", folder)
    port = free_port()
    result = run(
        host_venv, "check_in_simcord.py", cwd=folder, env=clean_env(POLLY_HEALTH_PORT=str(port), DATABASE_URL="x://y")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])

    # Installed from the wheel, into an environment that is not this repository's.
    assert not found["python"].startswith(str(REPO_ROOT))
    assert found["extensions"] == ["cogs.admin", "cogs.tags", "polly"]
    # /mem for the owner only (a guild administrator is not an operator of the bot).
    assert "Memory of this bot process" in found["owner_stats"]
    refused = found["guild_admin_stats"]
    assert "You must be one of this bot's operators" in refused and "Memory of" not in refused
    assert "Database pool" in found["owner_pool"]
    assert (
        "Charts need Pillow" in found["chart_without_pillow"]
        and "polly-memory-ops[charts]" in found["chart_without_pillow"]
    )
    assert found["postgres_without_driver"] == (
        "MissingDriverError: POLLY_DATABASE_URL needs the asyncpg driver, which is not installed: "
        "install polly-memory-ops[postgres] (pip install 'polly-memory-ops[postgres]')"
    )
    # The host is still the host: prefix, help, intents, cache, commands, and no attribute of Polly's.
    assert found["prefix"] == "!" and found["help_command"] == "DefaultHelpCommand"
    assert found["intents"] == {"members": True, "message_content": True}
    assert found["max_messages"] == 5000
    assert found["tree"] == ["mem", "tag"] and found["tree_after_unload"] == ["tag"]
    assert found["bot_attributes"] == []
    assert found["slash_tag_set"] == "Tag hello saved." and found["slash_tag_get"] == "world"
    assert "world" in found["general"]  # !tag hello
    assert "stranger said: secret plans" in found["general"]  # !snipe: the message cache still works
    # Its database: same tables, same polls schema and rows; Polly's tables are in Polly's own file.
    assert found["host_db_after"] == found["host_db_before"]
    assert found["host_db_before"]["tables"] == ["polls", "tags"]
    assert "polly_memory_checkpoints" in found["polly_db_tables"]
    assert all(t.startswith("polly_") for t in found["polly_db_tables"])
    # A reload in the middle of a trace ends it; the next trace starts and ends; nothing is left over.
    assert "Tracing allocations" in found["trace_started"] and found["tracing_during_trace"]
    assert not found["tracing_after_reload"]
    assert "Tracing allocations" in found["second_trace"] and not found["tracing_after_second_trace"]
    assert found["trace_results_posted"]
    assert found["resources_after_reloads"] == found["resources_before"]
    assert "Memory of this bot process" in found["stats_after_reload"] and found["ticks_after_reload"] >= 2
    assert found["general_at_end"].count("Reloaded polly.") == 3 and "Unloaded polly." in found["general_at_end"]
    # Unload: the endpoints' port is free again, no task, thread or descriptor of Polly's remains.
    assert found["port_taken_while_loaded"] and found["port_free_after_unload"]
    before, after = found["resources_before"], found["resources_after_unload"]
    assert [t for t in after["tasks"] if t not in before["tasks"]] == []
    # Polly's own database connection (an aiosqlite thread) is closed with it; the host uses none.
    assert set(after["threads"]) <= set(before["threads"]) and "_connection_worker_thread" not in str(after["threads"])
    assert "polly-off-loop_0" in before["threads"] and "polly-off-loop" not in str(after["threads"])  # its worker too
    assert after["fds"] < before["fds"] and not after["tracing"]


def test_the_offline_console_runs_a_third_party_bot(host_venv, tmp_path):
    folder = host_copy(tmp_path)
    console = host_venv.parent / "polly-offline"
    result = run(console, "bot:create_bot", cwd=folder, env=clean_env(), stdin="/mem stats\n/tag name:x content:y\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Memory of this bot process" in result.stdout
    assert "Tag x saved." in result.stdout
    missing = run(console, "bot:nothing_here", cwd=folder, env=clean_env(), stdin="")
    assert missing.returncode == 2 and "bot has no attribute nothing_here" in missing.stderr
    assert "Traceback" not in missing.stderr
