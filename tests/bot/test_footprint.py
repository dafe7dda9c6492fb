"""Polly's own footprint: what a started bot imports (the RSS figures are in `python -m benchmarks`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# Each of these cost RSS for nothing in a bot without HEALTH_PORT (measured in the issue and in
# benchmarks/footprint.py): they must stay out of sys.modules.
HEAVY_WITHOUT_HEALTH = ("aiohttp.web", "prometheus_client", "pydantic", "pydantic_settings", "tabulate", "dotenv")


def imported_after(code: str, cwd) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_a_bot_without_health_port_imports_no_http_server_metrics_or_settings_library(tmp_path):
    modules = imported_after(
        "from bot.app import create_bot\nfrom polly.config import load_settings\n"
        "create_bot(load_settings(database_url='sqlite+aiosqlite:///" + str(tmp_path / "p.db") + "'))",
        tmp_path,
    )
    assert "bot.app" in modules and "cogs" in modules
    assert not [name for name in HEAVY_WITHOUT_HEALTH if name in modules]


def test_the_health_server_brings_neither_aiohttp_web_nor_prometheus_client(tmp_path):
    modules = imported_after("import bot.health", tmp_path)
    assert "bot.http_server" in modules
    assert "aiohttp.web" not in modules and "prometheus_client" not in modules


@pytest.mark.parametrize("with_env_file", [False, True])
def test_python_dotenv_is_imported_only_when_a_dotenv_file_exists(tmp_path, with_env_file):
    if with_env_file:
        (tmp_path / ".env").write_text("DB_POOL_SIZE=3\n")
    modules = imported_after("from polly.config import load_settings\nload_settings()", tmp_path)
    assert ("dotenv" in modules) is with_env_file
