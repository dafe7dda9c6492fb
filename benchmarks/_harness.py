"""Timing helpers: interleaved repeats and medians, so a noisy shared machine hurts both sides alike."""

from __future__ import annotations

import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One row of the report."""

    figure: str
    value: float
    baseline: float
    unit: str
    budget: str
    passed: bool
    ratio: float | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(
    candidate: Callable[[], float], baseline: Callable[[], float], repeats: int = 7
) -> tuple[float, float, list[float], list[float]]:
    """Run baseline and candidate alternately `repeats` times; return both medians and the raw runs.

    Each callable returns its own measurement (seconds); GC is collected between runs so one
    side does not pay for the other's garbage.
    """
    cand, base = [], []
    for _ in range(repeats):
        gc.collect()
        base.append(baseline())
        gc.collect()
        cand.append(candidate())
    return statistics.median(cand), statistics.median(base), cand, base


def fmt_seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def fmt_value(value: float, unit: str) -> str:
    if value != value:  # NaN: nothing measured (the detail says why)
        return "none"
    if unit == "s":
        return fmt_seconds(value)
    if unit == "MiB":
        return f"{value:.2f} MiB"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.4f} %"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g} {unit}"


def run_child(module: str, *args: str, timeout: float = 900, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module args` from a clean interpreter; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
        env=env,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


class GcPauses:
    """The collector's pauses (installed in `gc.callbacks`), so a lag probe can tell the work it measures
    from a collection, whose length is a property of the whole heap, not of what triggered it."""

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.full = 0
        self.longest_full_ms = 0.0
        self._started = 0.0

    def record(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._started) * 1000
        self.total_ms += pause
        if info["generation"] == 2:
            self.full += 1
            self.longest_full_ms = max(self.longest_full_ms, pause)


def operator_in_ops(env: Any, bot: Any) -> tuple[Any, Any]:
    """In a SimCord world: a guild with #ops and an administrator who is the bot's owner (an operator)."""
    import discord

    guild = env.create_guild()
    ops = guild.create_text_channel("ops")
    admins = guild.create_role("admins", permissions=discord.Permissions(administrator=True))
    operator = guild.add_member(env.create_user("you"), roles=[admins])
    bot.owner_ids = {operator.id}
    return ops, operator
