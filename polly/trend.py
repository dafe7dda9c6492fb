"""The RSS trend: a least-squares slope over the recent window, and when it reaches a threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from polly.formatting import MIB

# A fall of this fraction between two samples (a restart, a big cleanup) starts a new trend segment.
TREND_RESET_DROP = 0.10


@dataclass(frozen=True)
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


def rss_trend(
    points: Sequence[RssPoint],
    window_s: float,
    threshold_bytes: float | None = None,
    spark_points: int = 24,
) -> Trend:
    """Least-squares slope of RSS over `window_s`, starting after the last big drop.

    A restart or a large cleanup makes RSS fall at once; fitting across it would hide a leak
    that resumes after it, so the fit uses only the points since the last fall of more than
    TREND_RESET_DROP.
    """
    if not points:
        return Trend(None, 0, 0.0, None)
    newest = points[-1][0]
    window = []
    for point in reversed(points):  # newest first: stop at the window's edge, not the ring's
        if newest - point[0] > window_s:
            break
        window.append(point)
    window.reverse()
    start = 0
    for i in range(1, len(window)):
        if window[i][1] < window[i - 1][1] * (1 - TREND_RESET_DROP):
            start = i
    segment = window[start:]
    recent = tuple(p[1] for p in window[-spark_points:])
    span = segment[-1][0] - segment[0][0] if segment else 0.0
    if len(segment) < 3 or span <= 0:
        return Trend(None, len(segment), span, None, recent)
    t0 = segment[0][0]
    xs = [p[0] - t0 for p in segment]
    ys = [float(p[1]) for p in segment]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx if sxx else 0.0  # bytes per second
    eta = None
    if threshold_bytes is not None and slope > 0:
        eta = max(0.0, (threshold_bytes - ys[-1]) / slope)
    return Trend(slope * 3600 / MIB, n, span, eta, recent)
