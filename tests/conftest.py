"""Shared fixtures: isolated settings, a SQLite file database, the bot under SimCord."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot import PollyBot, create_bot, poll_checks
from polly.config import Settings, setting_names
from polly.enhanced_database import Database
from polly.ext.access import refusals_logged
from polly.ext.replies import answered_in_discord
from polly.memory_utils import registry
from tests.settings import make_settings

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
    "discord_caches",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-days",
        type=int,
        default=1,
        help="simulated days of the alert chaos soak (tests/cogs/test_alert_soak.py); CI runs 7",
    )


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting of the machine running the tests leaks into them."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.fixture
async def simcord_env(simcord_env):  # wraps simcord's own fixture of that name
    """Refusals and domain errors reach discord.py's tree (as CheckFailure / CommandInvokeError)
    after the cog answered them, and SimCord records every such error: acknowledge exactly those,
    so SimCord's teardown still fails a test on any other error."""
    yield simcord_env
    cursor = simcord_env._errors_acknowledged  # errors before it were already read by the test
    unexpected = [e for e in simcord_env.errors[cursor:] if not answered_in_discord(e)]
    if unexpected:
        raise ExceptionGroup("the bot raised errors the cog did not answer", unexpected)


@pytest.fixture(autouse=True)
def _no_tracing_left_behind() -> Iterator[None]:
    """Requests for tracemalloc are process-wide: a test that failed mid-trace leaves none behind."""
    yield
    from polly import allocations

    allocations._requests.clear()
    allocations._started_here = False
    if allocations.tracing():
        import tracemalloc

        tracemalloc.stop()


@pytest.fixture(autouse=True)
def _fresh_failure_tracking() -> Iterator[None]:
    """Polly's failure tracking (and the refusal log's memory) is process-global: each test starts
    empty, with default limits."""
    poll_checks.message_fetch_failures.clear()
    refusals_logged.clear()
    yield
    poll_checks.message_fetch_failures.clear()
    defaults = Settings()
    registry.resize("message_fetch_failures", defaults.max_failure_entries, defaults.failure_cleanup_age)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite file database with Polly's tables."""
    database = Database(make_settings(tmp_path))
    await database.create_tables()
    yield database
    await database.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def each_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with Polly's tables, once SQLite and once the real PostgreSQL (shared between
    tests: empty the tables a test counts on)."""
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = Database(make_settings(tmp_path, **({"database_url": url} if url else {})))
    await database.create_tables()
    yield database
    await database.dispose()


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


MEMORY_BUDGET_MARKERS = ("limit_memory", "limit_leaks")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Memory-budget tests measure only under pytest-memray (`--memray`, as CI runs them);
    without it they would pass without measuring anything, so they are skipped."""
    if config.getoption("memray", default=False):
        return
    skip = pytest.mark.skip(reason="a memory budget: measured only with --memray (CI runs it)")
    for item in items:
        if any(item.get_closest_marker(name) for name in MEMORY_BUDGET_MARKERS):
            item.add_marker(skip)
