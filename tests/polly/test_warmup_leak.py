"""A leak from the first minute under the warm-up: a warm-up saturates, a leak does not."""

from __future__ import annotations

import math
import random

from polly.formatting import MIB
from polly.warmup_leak import warmup_leak_evidence

STEADY_MIB = 512


def since_start(minutes: int, leak_mib_per_hour: float = 0.0, tau: float = 12.0, seed: int = 1):
    rng = random.Random(seed)
    points = []
    for minute in range(minutes + 1):
        warm = STEADY_MIB * (1 - 0.35 * math.exp(-minute / tau))
        rss = warm + leak_mib_per_hour * minute / 60 + rng.gauss(0, STEADY_MIB * 0.003)
        points.append((minute * 60.0, int(rss * MIB)))
    return points


def test_nothing_is_judged_before_a_warm_up_could_have_saturated():
    assert warmup_leak_evidence(since_start(30, 60.0), 0.0) is None


def test_a_warm_up_alone_is_no_leak():
    for seed in range(5):
        evidence = warmup_leak_evidence(since_start(45, seed=seed), 0.0)
        assert evidence is not None and not evidence.sustained(2.0), (seed, evidence)


def test_a_leak_under_the_warm_up_is_one_with_its_rate():
    evidence = warmup_leak_evidence(since_start(40, 60.0), 0.0)
    assert evidence is not None and evidence.sustained(2.0)
    # 60 MiB/h under a 179 MiB warm-up: estimated within a factor of 1.5 (the warm-up and the rise share
    # the first minutes; the estimate firms up once the short window takes over after the grace)
    assert 40 <= (evidence.slope_mib_per_hour or 0) <= 90
