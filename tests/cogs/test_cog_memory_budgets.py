"""Memory ceilings of the cog's hot paths, enforced by pytest-memray with --memray (as CI runs).

Ceilings come from measurements on the CI machine, with the margin stated in each test.
"""

from __future__ import annotations

import gc
import time

import pytest

from polly.alert_engine import AlertEngine
from polly.alerts import Thresholds
from polly.ext import memory_render as render
from polly.memory_ops import StatsView
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry
from polly.monitor_cycle import MonitorCycle
from polly.monitor_health import MonitorHealth
from tests.clocks import FakeClock
from tests.cogs.helpers import add_ops_guild
from tests.settings import make_settings


def cycle_with_structures(tmp_path, count: int = 20) -> MonitorCycle:
    registry = StructureRegistry()
    for i in range(count):
        d = registry.bounded_dict(f"structure_{i:02d}_with_a_long_descriptive_name", max_size=1000)
        d.update({k: {"last_attempt": time.time()} for k in range(100)})
    settings = make_settings(tmp_path, memory_history_size=1440)
    monitor = MemoryMonitor(settings, structures=registry, clock=FakeClock(step_s=60))
    return MonitorCycle(settings, monitor, AlertEngine(Thresholds.from_settings(settings)), None, registry)


@pytest.fixture
async def warm_cycle(tmp_path):
    """A cycle that has ticked enough to fill the trend window and the interpreter's free lists."""
    cycle = cycle_with_structures(tmp_path)
    for _ in range(3000):
        await cycle.tick()
    return cycle


@pytest.fixture
def stats_inputs(tmp_path):
    cycle = cycle_with_structures(tmp_path, count=50)
    sample = cycle.monitor.sample()
    trend = cycle.monitor.trend()
    # One render first: the table code (tabulate, wcwidth) loads with the first table drawn in the
    # process, whichever test draws it; the ceiling is for rendering, not for that one import.
    view = StatsView(sample, trend, MonitorHealth(), sample.at, firing=0, tracing=False, threshold_percent=80)
    render.stats_embed(view, latency_s=0.05, monitoring="running")
    return sample, trend


@pytest.mark.limit_memory("256 KB")
def test_rendering_mem_stats_with_50_structures_fits_a_ceiling(stats_inputs):
    """Measured about 40 KB for 100 renders of 50 structures (garbage is freed as it goes); ceiling 256 KB."""
    sample, trend = stats_inputs
    for _ in range(100):
        view = StatsView(sample, trend, MonitorHealth(), sample.at, firing=0, tracing=False, threshold_percent=80)
        render.stats_embed(view, latency_s=0.05, monitoring="running")


@pytest.mark.limit_memory("2 MB")
async def test_1000_monitor_ticks_fit_a_ceiling(tmp_path):
    """Measured about 0.5 MB for 1,000 ticks (history points, cleanups every 15 ticks); ceiling 2 MB."""
    cycle = cycle_with_structures(tmp_path)
    for _ in range(1000):
        await cycle.tick()
    assert len(cycle.monitor.history) == 1000


@pytest.mark.limit_leaks("64 KB")
async def test_a_loop_of_monitor_ticks_leaks_nothing(warm_cycle):
    """Once the history ring is full a tick retains nothing; 64 KB per location allows interpreter noise."""
    for _ in range(1000):
        await warm_cycle.tick()
    assert len(warm_cycle.monitor.history) == 1440


def forget_simulated_history(env, bot) -> None:
    """Drop what the simulated Discord and discord.py's bounded message cache keep of each call
    (only at the end of a test).

    SimCord records every message, interaction, REST request and transcript line (its backend
    attributes are not public API, hence this helper); discord.py caches up to 1,000 messages.
    Neither is the bot's memory: cleared here so memray sees only what the bot itself retains.
    """
    backend = env.backend
    backend.transcript.clear()
    backend.http_requests.clear()
    backend.interactions.clear()
    backend.interaction_tokens.clear()
    for messages in backend.messages.values():
        messages.clear()
    if bot._connection._messages is not None:  # off by default (DISCORD_MAX_MESSAGES=0)
        bot._connection._messages.clear()
    # Every snowflake SimCord hands out stays reserved; its set grows in 16/32/64 KB steps. Only
    # safe at the end of a test: nothing is created afterwards.
    backend._reserved_ids.clear()
    gc.collect()


@pytest.fixture
async def stats_caller(simcord_env, simcord_bot):
    _, channel, operator = add_ops_guild(simcord_env, simcord_bot)
    for _ in range(300):  # warm free lists and caches outside the measured call
        await operator.slash(channel, "mem stats")

    async def call() -> None:
        await operator.slash(channel, "mem stats")

    call.forget = lambda: forget_simulated_history(simcord_env, simcord_bot)
    return call


@pytest.mark.limit_leaks("64 KB")
async def test_repeated_mem_stats_through_simcord_leaks_nothing(stats_caller):
    """The bot retains nothing per /mem stats once SimCord's own records are dropped. Measured over
    200 calls: at most 17 KB at one location, strings discord.py builds for getattr() that stay in
    CPython's method cache; 64 KB per location covers that. A deliberate leak of one embed's repr
    per call (about 3 KB) fails this test with 590 KB at one location."""
    for _ in range(200):
        await stats_caller()
    stats_caller.forget()
