"""Shared fixtures: isolated settings, a SQLite file database, the bot under SimCord."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot import PollyBot, create_bot
from polly import background_tasks
from polly.config import Settings, load_settings, setting_names
from polly.memory_utils import registry

REPO_ROOT = Path(__file__).resolve().parent.parent
# The keys get_memory_stats() (the /health/memory payload) must have: the plan's and ours.
STATS_KEYS = (
    "rss",
    "vms",
    "percent",
    "available",
    "system_total",
    "system_used",
    "system_percent",
    "checkpoints_count",
    "limit",
    "limit_source",
    "percent_of_limit",
    "trend",
    "structures",
    "pool",
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting of the machine running the tests leaks into them."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture(autouse=True)
def _fresh_failure_tracking() -> Iterator[None]:
    """Polly's failure tracking is process-global: each test starts empty, with default limits."""
    background_tasks.message_fetch_failures.clear()
    yield
    background_tasks.message_fetch_failures.clear()
    registry.resize("message_fetch_failures", 1000, 60)


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for a test: no .env, a SQLite file in tmp_path, `overrides` on top."""
    values: dict[str, object] = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'polly.db'}"}
    values.update(overrides)
    return load_settings(env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TEST_POSTGRES_URL is not set: no PostgreSQL server to test against (.ci/run starts one)")
    return url


@pytest.fixture
def bot_settings(settings: Settings) -> Settings:
    """Override in a test module (or parametrize) to start the bot with other settings."""
    return settings


@pytest.fixture
async def simcord_bot(bot_settings: Settings) -> AsyncIterator[PollyBot]:
    bot = create_bot(bot_settings)
    yield bot
    # SimCord's teardown does not close the bot: do it, so loops stop and the engine is disposed.
    await bot.close()
