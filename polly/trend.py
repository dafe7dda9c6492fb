"""The RSS trend: a least-squares slope over the recent window, and when it reaches a threshold;
and the evidence the leak rule weighs (`leak_evidence`).

A rising line alone is not a leak: right after a start RSS climbs while caches warm up, caches
that fill at once make a step that tilts any line fitted across it, and spikes and noise tilt
short windows. So a window shows a leak when, after a running median has taken out spikes of up
to 3 samples, its slope clears the minimum rate, stands well above the noise of the fit (t-value),
and a straight line fits the window better than any single step does (a leak rises all along; a
step is over at once). The monitor judges no window that reaches back into the warm-up grace
after a start, and the rule must hold for several checks (a few-minute ramp can pass the tests
for a minute or two). Tuned on replayed traces: `python -m benchmarks --only alert-quality`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import islice

from polly.formatting import MIB
from polly.records import record

# A fall of this fraction between two samples (a restart, a big cleanup) starts a new trend segment.
TREND_RESET_DROP = 0.10
# The leak rule's tests (see the module docstring); tuned on the alert-quality benchmark.
LEAK_MIN_T = 4.0  # the slope is at least this many standard errors above zero
MIN_STEP_SIDE = 3  # samples on each side of the step allowed for
SPIKE_FILTER = 7  # a running median this wide takes out spikes of up to 3 samples first
MIN_SPAN_SHARE = 0.9  # a window is judged once samples cover this much of it
MIN_WINDOW_SAMPLES = 6


@record
class Trend:
    """RSS trend over the recent window (the segment after the last big drop)."""

    slope_mib_per_hour: float | None
    samples: int
    span_s: float
    seconds_to_threshold: float | None
    recent_rss: tuple[int, ...] = ()

    @property
    def rising(self) -> bool:
        return self.slope_mib_per_hour is not None and self.slope_mib_per_hour > 0


RssPoint = tuple[float, int]
"""(epoch seconds, RSS bytes): all the trend needs, kept compact so the history costs little."""


def _segment(points: Sequence[RssPoint], window_s: float, not_before: float | None = None) -> list[RssPoint]:
    """The points of the last `window_s` (none before `not_before`), after the last big drop: read
    from the newest back, up to the window's edge or the first big drop met on the way."""
    newest = points[-1][0]
    keep = 1 - TREND_RESET_DROP
    segment: list[RssPoint] = []
    later: int | None = None  # RSS of the point after this one
    for point in reversed(points):  # newest first: stop at the window's edge, not the ring's
        t, rss = point
        if newest - t > window_s or (not_before is not None and t < not_before):
            break
        if later is not None and later < rss * keep:
            break
        segment.append(point)
        later = rss
    segment.reverse()
    return segment


def rss_trend(
    points: Sequence[RssPoint],
    window_s: float,
    threshold_bytes: float | None = None,
    spark_points: int = 24,
    min_samples: int = 3,
    min_span_s: float = 0.0,
) -> Trend:
    """Least-squares slope of RSS over `window_s`, starting after the last big drop; no slope from
    fewer than `min_samples` points or a span under `min_span_s` (three samples of a healthy bot's
    first minutes would say "+23 MiB/h").

    A restart or a large cleanup makes RSS fall at once; fitting across it would hide a leak
    that resumes after it, so the fit uses only the points since the last fall of more than
    TREND_RESET_DROP.
    """
    if not points:
        return Trend(None, 0, 0.0, None)
    newest_t, newest_rss = points[-1]
    tail = (points[i] for i in range(max(0, len(points) - spark_points), len(points)))  # a deque: no slices
    recent = tuple(p[1] for p in tail if newest_t - p[0] <= window_s)
    # One pass from the newest point back (as `_segment` reads it), summing for the fit on the way:
    # x and y relative to the newest point, so the sums stay small and exact enough.
    keep = 1 - TREND_RESET_DROP
    n, sx, sy, sxx, sxy = 1, 0.0, 0.0, 0.0, 0.0
    oldest_t, later = newest_t, newest_rss
    for t, rss in islice(reversed(points), 1, None):
        if newest_t - t > window_s or later < rss * keep:
            break
        x, y = t - newest_t, rss - newest_rss
        n += 1
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
        oldest_t, later = t, rss
    span = newest_t - oldest_t
    if n < max(3, min_samples) or span <= 0 or span < min_span_s:
        return Trend(None, n, span, None, recent)
    spread = n * sxx - sx * sx
    slope = (n * sxy - sx * sy) / spread if spread else 0.0  # bytes per second
    eta = None
    if threshold_bytes is not None and slope > 0:
        eta = max(0.0, (threshold_bytes - newest_rss) / slope)
    return Trend(slope * 3600 / MIB, n, span, eta, recent)


@record
class LeakEvidence:
    """What one window says about a leak (see the module docstring)."""

    window_s: float
    slope_mib_per_hour: float | None  # None: the window is not covered yet
    t_value: float = 0.0
    steady: bool = False  # a straight line fits better than any single step

    def sustained(self, min_mib_per_hour: float) -> bool:
        """A leak by every test: fast enough, far above the noise, rising steadily."""
        slope = self.slope_mib_per_hour
        return slope is not None and slope >= min_mib_per_hour and self.t_value >= LEAK_MIN_T and self.steady

    def settled(self, min_mib_per_hour: float) -> bool:
        """Clearly no longer rising: what resolves a firing leak alert (hysteresis: half the rate,
        half the t-value, or no longer steady)."""
        slope = self.slope_mib_per_hour
        return slope is None or slope < min_mib_per_hour / 2 or self.t_value < LEAK_MIN_T / 2 or not self.steady


def leak_evidence(
    points: Sequence[RssPoint],
    window_s: float,
    not_before: float | None = None,
    min_mib_per_hour: float | None = None,
) -> LeakEvidence:
    """Slope, its t-value and steadiness over the last `window_s`, using no point before
    `not_before` (the end of the warm-up grace) nor before the last big drop.

    With `min_mib_per_hour` (the leak rule's rate), steadiness is judged only where it can change
    the rule's decision: a window rising slower than half that rate, or under half LEAK_MIN_T,
    neither is sustained nor fails to be settled whatever its steadiness (it says not steady).
    The step fit it saves is a third of a window's cost, paid by a healthy bot at every check."""
    if not points:
        return LeakEvidence(window_s, None)
    segment = _segment(points, window_s, not_before)
    span = segment[-1][0] - segment[0][0] if segment else 0.0
    if len(segment) < MIN_WINDOW_SAMPLES or span < window_s * MIN_SPAN_SHARE:
        return LeakEvidence(window_s, None)
    t0 = segment[0][0]
    xs = [(p[0] - t0) / 3600 for p in segment]  # hours
    ys = [p[1] / MIB for p in segment]
    ys = running_median(ys, SPIKE_FILTER)
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx  # MiB/h
    residual = sum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = math.sqrt(residual / (n - 2) / sxx)
    t_value = slope / stderr if stderr > 0 else (math.inf if slope > 0 else 0.0)
    could_matter = min_mib_per_hour is None or (slope >= min_mib_per_hour / 2 and t_value >= LEAK_MIN_T / 2)
    steady = slope > 0 and could_matter and residual < _best_step_residual(ys)
    return LeakEvidence(window_s, slope, t_value, steady)


def _best_step_residual(ys: Sequence[float]) -> float:
    """The squared error of the best two-level fit (one jump anywhere, MIN_STEP_SIDE samples or
    more on each side), in O(n) with running sums."""
    n = len(ys)
    total, total_sq = sum(ys), sum(y * y for y in ys)
    best, left, left_sq = math.inf, 0.0, 0.0
    for k in range(1, n):
        left += ys[k - 1]
        left_sq += ys[k - 1] ** 2
        if k < MIN_STEP_SIDE or n - k < MIN_STEP_SIDE:
            continue
        right, right_sq = total - left, total_sq - left_sq
        best = min(best, left_sq - left * left / k + right_sq - right * right / (n - k))
    return best


def running_median(values: Sequence[float], width: int) -> list[float]:
    half = width // 2
    n = len(values)
    edge = [
        sorted(values[max(0, i - half) : i + half + 1]) for i in (*range(min(half, n)), *range(max(half, n - half), n))
    ]
    middle = [sorted(values[i - half : i + half + 1])[half] for i in range(half, n - half)]
    head, tail = edge[: min(half, n)], edge[min(half, n) :]
    return [a[len(a) // 2] for a in head] + middle + [a[len(a) // 2] for a in tail]


@record
class LeakWindows:
    """The leak rule's two windows: short (fast leaks) and long (slow ones)."""

    fast: LeakEvidence
    slow: LeakEvidence
    # While a leak alert fires: the long window over samples since it fired only. A stepped or
    # saw-tooth leak keeps it rising; a leak that stopped makes it settle (the level stopped rising).
    since_fired: LeakEvidence | None = None


class LeakWatch:
    """Both windows' evidence at each check, the long window judged at most every
    `slow_every_s` (it moves little from one sample to the next, and judging it costs ~0.2 ms)."""

    def __init__(self, fast_s: float, slow_s: float, slow_every_s: float = 300.0) -> None:
        self.fast_s, self.slow_s, self.slow_every_s = fast_s, slow_s, slow_every_s
        self._slow: tuple[float, float | None, LeakEvidence] | None = None  # when, for which rate, what

    def windows(
        self,
        points: Sequence[RssPoint],
        not_before: float | None,
        fired_at: float | None = None,
        min_mib_per_hour: float | None = None,
    ) -> LeakWindows:
        """`min_mib_per_hour`: the leak rule's rate now (see `leak_evidence`)."""
        now = points[-1][0] if points else 0.0
        slow = self._slow
        if slow is None or not 0 <= now - slow[0] < self.slow_every_s or slow[1] != min_mib_per_hour:
            judged = leak_evidence(points, self.slow_s, not_before, min_mib_per_hour)
            slow = self._slow = (now, min_mib_per_hour, judged)
        since = None
        if fired_at is not None:
            since = leak_evidence(points, self.slow_s, max(fired_at, not_before or fired_at), min_mib_per_hour)
        return LeakWindows(leak_evidence(points, self.fast_s, not_before, min_mib_per_hour), slow[2], since)
