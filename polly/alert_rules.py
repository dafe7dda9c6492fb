"""Every alert rule's conditions for one sample: polly.alerts' own rules and the container's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from polly.alerts import (
    Condition,
    Thresholds,
    growth_conditions,
    leak_conditions,
    memory_conditions,
    pool_conditions,
    structure_conditions,
)
from polly.container import ContainerMark
from polly.container_rules import pressure_conditions, throttle_conditions
from polly.heap_types import TypeGrowth
from polly.samples import MemorySample
from polly.trend import LeakWindows

if TYPE_CHECKING:
    from polly.rss_breakdown import PartChange


def evaluate_rules(
    sample: MemorySample,
    leak: LeakWindows | None,
    thresholds: Thresholds,
    *,
    previous: MemorySample | None = None,
    window_start: ContainerMark | None = None,
    checkpoint_growth_percent: float | None = None,
    growing_types: Sequence[TypeGrowth] = (),
    grown_part: PartChange | None = None,
) -> list[Condition]:
    """Every rule's conditions for one sample; `growing_types` and `grown_part` (of RSS, between
    the last two automatic checkpoints) are named in the growth and leak-trend details;
    `window_start` is the container's reading ALERT_FOR_CHECKS checks ago."""
    return [
        *memory_conditions(sample, thresholds),
        *pool_conditions(sample, previous, thresholds),
        *structure_conditions(sample, thresholds),
        *growth_conditions(checkpoint_growth_percent, thresholds, growing_types, grown_part),
        *leak_conditions(sample, leak, thresholds, growing_types, grown_part),
        *throttle_conditions(sample, window_start, thresholds),
        *pressure_conditions(sample, thresholds),
    ]
