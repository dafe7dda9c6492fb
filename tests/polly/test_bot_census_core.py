"""The bot census's core parts without Discord: sessions found in a heap walk (discord.py's counted
apart), the /metrics families with a bounded label set, child processes from the real /proc."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from polly.alert_engine import AlertEngine
from polly.alerts import Thresholds
from polly.bot_census import KINDS_KEPT, OTHER, BotCensus, ChildProcess, SessionCensus, TaskKind, kept
from polly.child_processes import child_processes
from polly.heap_types import count_types
from polly.memory_optimizer import MemoryMonitor
from polly.memory_utils import StructureRegistry
from polly.metrics import MetricsRenderer
from polly.monitor_cycle import MonitorCycle
from polly.session_census import count_sessions
from tests.settings import make_settings


async def test_sessions_are_counted_from_a_heap_walk_with_discord_s_own_apart():
    ours, theirs, closed = aiohttp.ClientSession(), aiohttp.ClientSession(), aiohttp.ClientSession()
    await closed.close()
    objects = gc.get_objects()
    try:
        counted = await count_sessions(objects, count_types(), discord_sessions=[theirs])
    finally:
        del objects
        await ours.close()
        await theirs.close()
    assert counted == SessionCensus(total=3, unclosed=2, discord=1, connectors_open=2)
    assert counted.bot_unclosed == 1


def test_task_kinds_beyond_the_kept_ones_are_summed_under_one_name():
    counts = {f"Cog.kind{i}": i + 1 for i in range(KINDS_KEPT + 5)}
    ranked = kept(counts)
    assert len(ranked) == KINDS_KEPT + 1 and ranked[0] == (f"Cog.kind{KINDS_KEPT + 4}", KINDS_KEPT + 5)
    assert ranked[-1] == (OTHER, sum(range(1, 6)))


def test_the_metrics_carry_the_census_with_one_label_value_per_kept_kind(tmp_path):
    settings = make_settings(tmp_path)
    structures = StructureRegistry()
    monitor = MemoryMonitor(settings, structures=structures)
    cycle = MonitorCycle(settings, monitor, AlertEngine(Thresholds.default()), None, structures)
    census = BotCensus(
        tasks=(TaskKind("Cog.wait", 40, 600.0), TaskKind(OTHER, 3, 0.0)),
        task_total=43,
        views=(),
        view_total=30,
        dynamic_items=0,
        listeners=(),
        loops=(),
        survivors=(),
        children=(ChildProcess(1, "ffmpeg", 8 * 1024 * 1024),),
        sessions=SessionCensus(26, 25, 1, 25),
        sessions_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    monitor._latest = replace(monitor.sample(), bot=census)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(MetricsRenderer(cycle, "i").render().decode())
        for s in f.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"polly_instance": "i", **labels}.items())))]

    assert value("polly_asyncio_tasks", kind="Cog.wait") == 40 and value("polly_asyncio_tasks", kind=OTHER) == 3
    assert value("polly_discord_views", timeout="any") == 30
    assert value("polly_http_sessions", state="unclosed") == 25 and value("polly_http_sessions", state="discord") == 1
    assert value("polly_extension_survivors") == 0
    assert value("polly_child_processes_rss_bytes") == 8 * 1024 * 1024


def test_a_child_and_its_own_child_are_found_with_their_rss():
    code = "import subprocess, sys; subprocess.run(['sleep', '30']); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        for _ in range(200):  # until the grandchild exists
            found = child_processes() or ()
            if any(c.name == "sleep" for c in found):
                break
            time.sleep(0.02)
        mine = [c for c in found if c.pid == child.pid]
        assert mine and mine[0].rss > 1024 * 1024
        assert any(c.name == "sleep" for c in found)  # the whole tree below the bot
    finally:
        for below in child_processes() or ():
            if below.name == "sleep":
                os.kill(below.pid, signal.SIGKILL)
        child.kill()
        child.wait()
