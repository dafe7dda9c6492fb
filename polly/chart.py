"""Memory charts: what one shows (a spec built from the 5-minute history, alert events,
checkpoints, cleanups and the trend) and drawing it in a short-lived process.

Why a process: the drawing needs Pillow, which costs the bot about 5 MiB of RSS once imported
(matplotlib: 59 MiB and 2.4 s); a child that exits after each chart gives it all back, and the
event loop only waits on a pipe. Measured in `python -m benchmarks --only chart`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polly.alerts import hours_to_threshold
from polly.formatting import format_bytes, format_duration
from polly.history import BUCKET, MAX_HOURS, ChartError, HistoryBucket, bucket_start, merged_step
from polly.records import record

if TYPE_CHECKING:
    from polly.monitor_cycle import MonitorCycle

WIDTH, HEIGHT = 800, 440
RENDER_TIMEOUT_S = 30
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CHARTS_EXTRA = (
    "Charts need Pillow, which is not installed here: install polly-memory-ops[charts] "
    "(pip install 'polly-memory-ops[charts]') and reload the extension."
)

__all__ = ["MAX_HOURS", "Chart", "ChartError", "Marker", "chart_spec", "memory_chart", "render_png"]


@record
class Chart:
    png: bytes
    caption: str


@record
class Marker:
    at: datetime
    kind: str  # fired, resolved, checkpoint, auto_checkpoint, cleanup, auto_cleanup
    rss: int | None = None


def chart_spec(
    buckets: list[HistoryBucket],
    markers: list[Marker],
    *,
    now: datetime,
    hours: float,
    threshold_percent: float,
    slope_mib_per_hour: float | None,
    seconds_to_threshold: float | None,
    title: str,
) -> tuple[dict[str, Any], str]:
    """The drawing's spec (plain JSON) and the caption; ChartError for fewer than two points."""
    if len(buckets) < 2:
        first_point = bucket_start(now) + BUCKET
        raise ChartError(
            f"No chart yet: the history has {len(buckets)} point(s) of the last {hours:g} h and a chart needs two. "
            f"A point is stored every 5 minutes; the next at {first_point:%H:%M} UTC."
        )
    start = now - timedelta(hours=hours)
    latest = buckets[-1]
    limit = latest.limit
    threshold = limit * threshold_percent / 100
    centre = BUCKET.total_seconds() / 2
    points = [(min(b.start.timestamp() + centre, now.timestamp()), b.rss_min, b.rss_mean, b.rss_max) for b in buckets]
    # A gap is where no point exists for more than two points' width: beyond ~50 h the history is
    # merged into wider points (20 min for a week), which are not gaps.
    step_s = merged_step(timedelta(hours=hours)).total_seconds()
    segments, gaps = [[points[0]]], []
    for before, after in itertools.pairwise(points):
        if after[0] - before[0] > 2.5 * step_s:  # a missing point or more: the bot was not running
            gaps.append([before[0], after[0]])
            segments.append([])
        segments[-1].append(after)
    low: float = min(b.rss_min for b in buckets)
    high: float = max(b.rss_max for b in buckets)
    end = now.timestamp()
    projection, eta_label = None, ""
    if slope_mib_per_hour is not None and slope_mib_per_hour > 0 and seconds_to_threshold is not None:
        ahead = min(seconds_to_threshold, hours * 3600 * 0.25)
        end += ahead
        reached = latest.rss_mean + slope_mib_per_hour * (ahead / 3600) * 1024 * 1024
        projection = [[now.timestamp(), latest.rss_mean], [end, reached]]
        eta_label = f"{threshold_percent:g} % in {format_duration(seconds_to_threshold)}"
        high = max(high, reached)
    # The y-axis fits the data and the projection within the chart's horizon: a far threshold is
    # said in the header, not drawn (stretching to it drew a 74 -> 255 MiB leak as a flat line).
    if threshold <= 2 * high:
        high = max(high, threshold)
    pad = max((high - low) * 0.08, 1024 * 1024)
    spec = {
        "width": WIDTH,
        "height": HEIGHT,
        "title": title,
        "start": start.timestamp(),
        "end": end,
        "y_min": max(0.0, low - pad),
        "y_max": high + pad,
        "segments": segments,
        "gaps": gaps,
        "limit": limit,
        "limit_label": f"limit {format_bytes(limit)}",
        "threshold": threshold,
        "threshold_label": f"alert at {threshold_percent:g} % ({format_bytes(threshold)})",
        "projection": projection,
        "eta_label": eta_label,
        "markers": [
            {"t": m.at.timestamp(), "kind": m.kind, "rss": m.rss}
            for m in markers
            if m.at.timestamp() >= start.timestamp()
        ],
        "axis_note": "UTC",
    }
    return spec, _caption(
        buckets, markers, now, hours, threshold_percent, slope_mib_per_hour, seconds_to_threshold, gaps
    )


def _caption(
    buckets: list[HistoryBucket],
    markers: list[Marker],
    now: datetime,
    hours: float,
    threshold_percent: float,
    slope: float | None,
    eta_s: float | None,
    gaps: list[list[float]],
) -> str:
    latest = buckets[-1]
    share = latest.rss_mean / latest.limit * 100 if latest.limit else 0.0
    counts = {
        kind: sum(1 for m in markers if m.kind == kind) for kind in ("fired", "resolved", "cleanup", "auto_cleanup")
    }
    checkpoints = sum(1 for m in markers if m.kind in ("checkpoint", "auto_checkpoint"))
    if slope is None:
        trend = "trend: not enough samples yet"
    elif slope > 0 and eta_s is not None:
        trend = f"trend **{slope:+.1f} MiB/h**: {threshold_percent:g} % in {format_duration(eta_s)}"
    else:
        trend = f"trend {slope:+.1f} MiB/h (not heading for {threshold_percent:g} %)"
    lines = [
        f"RSS **{format_bytes(latest.rss_mean)}** ({share:.1f} % of {format_bytes(latest.limit)}) at "
        f"{now:%H:%M} UTC; over {hours:g} h: {format_bytes(min(b.rss_min for b in buckets))} to "
        f"{format_bytes(max(b.rss_max for b in buckets))}",
        trend,
        f"{counts['fired']} alert(s) fired, {counts['resolved']} resolved · {counts['cleanup']} manual and "
        f"{counts['auto_cleanup']} automatic cleanup(s) · {checkpoints} checkpoint(s)"
        + (f" · {len(gaps)} gap(s) (restarts)" if gaps else ""),
    ]
    return "\n".join(lines)


async def gather_markers(cycle: MonitorCycle, since: datetime, buckets: list[HistoryBucket]) -> list[Marker]:
    """Alert firings and resolutions, checkpoints and cleanups since `since`."""
    markers: list[Marker] = []
    if cycle.store is not None:
        for event in await cycle.store.since(since):
            if event.kind in ("fired", "resolved"):
                markers.append(Marker(event.at, event.kind))
    for mark in await cycle.monitor.checkpoints.marks(since):
        markers.append(Marker(mark.at, "auto_checkpoint" if mark.automatic else "checkpoint", mark.rss))
    centre = BUCKET / 2
    for b in buckets:
        if b.manual_cleanups:
            markers.append(Marker(b.start + centre, "cleanup", b.rss_mean))
        if b.cleanups > b.manual_cleanups:
            markers.append(Marker(b.start + centre, "auto_cleanup"))
    return sorted(markers, key=lambda m: m.at)


async def memory_chart(cycle: MonitorCycle, hours: float, title: str, slope_mib_per_hour: float | None = None) -> Chart:
    """The chart of the last `hours`: ChartError when there is no history yet or drawing fails."""
    if not 0 < hours <= MAX_HOURS:
        raise ChartError(f"A chart spans 1 to {MAX_HOURS} hours, not {hours:g}.")
    ensure_drawable()
    payload, caption = await _chart_payload(cycle, hours, title, slope_mib_per_hour)
    # Only bytes stay alive while the child draws (a few hundred ms): the buckets and the spec
    # died young, so the collector does not promote them, and no full collection follows.
    return Chart(await render_png(payload), caption)


async def _chart_payload(
    cycle: MonitorCycle, hours: float, title: str, slope_mib_per_hour: float | None = None
) -> tuple[bytes, str]:
    """`slope_mib_per_hour`: an alert's own slope (a leak alert's window), projected as its text says;
    else the monitor's trend."""
    now = cycle.monitor.clock()
    since = now - timedelta(hours=hours)
    buckets = await cycle.history.load(since)
    trend = cycle.trend()
    threshold_percent = cycle.engine.thresholds.memory_percent
    slope, eta_s = trend.slope_mib_per_hour, trend.seconds_to_threshold
    latest = cycle.monitor.latest
    if slope_mib_per_hour is not None and latest is not None:
        hours_left = hours_to_threshold(latest, threshold_percent, slope_mib_per_hour)
        slope, eta_s = slope_mib_per_hour, (hours_left * 3600 if hours_left != float("inf") else None)
    spec, caption = chart_spec(
        buckets,
        await gather_markers(cycle, since, buckets),
        now=now,
        hours=hours,
        threshold_percent=threshold_percent,
        slope_mib_per_hour=slope,
        seconds_to_threshold=eta_s,
        title=title,
    )
    return json.dumps(spec).encode(), caption


def ensure_drawable() -> None:
    """ChartError saying which extra to install when Pillow is missing (looked up, never imported:
    only the drawing child loads it)."""
    if importlib.util.find_spec("PIL") is None:
        raise ChartError(CHARTS_EXTRA)


async def render_png(spec: dict[str, Any] | bytes) -> bytes:
    """Draw the spec (or its JSON) in a child process (polly/chart_png.py); ChartError if it fails
    or hangs."""
    ensure_drawable()
    payload = spec if isinstance(spec, bytes) else json.dumps(spec).encode()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "polly.chart_png",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
    except OSError as exc:  # the interpreter is gone (a virtual environment rebuilt under the bot)
        raise ChartError(
            f"The chart could not be drawn: the Python interpreter {sys.executable} cannot be started "
            f"({exc.strerror or exc}); restart the bot after changing its environment."
        ) from None
    try:
        png, errors = await asyncio.wait_for(child.communicate(payload), RENDER_TIMEOUT_S)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise ChartError(f"Drawing the chart took over {RENDER_TIMEOUT_S} s; try a shorter span.") from None
    if child.returncode != 0 or not png.startswith(b"\x89PNG"):
        last = (errors.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise ChartError(f"The chart could not be drawn ({last[:300]}).")
    return png
