"""The chart spec and the PNG drawn by the real renderer process; the 5-minute history's store."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import delete, func, select

from polly import chart_png
from polly.chart import HEIGHT, WIDTH, ChartError, Marker, chart_spec, render_png
from polly.history import BUCKET, HistoryBucket, HistoryRecorder
from polly.models import memory_history

MIB = 1024 * 1024
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def day_of_buckets(*, gap_hours: tuple[float, float] | None = None, slope_mib: float = 0.3) -> list[HistoryBucket]:
    buckets, start = [], NOW - timedelta(hours=24)
    for i in range(24 * 12):
        at = start + i * BUCKET
        hours_ago = (NOW - at).total_seconds() / 3600
        if gap_hours and gap_hours[1] <= hours_ago <= gap_hours[0]:
            continue
        rss = int(300 * MIB + i * slope_mib * MIB)
        buckets.append(HistoryBucket(at, rss - 2 * MIB, rss + 4 * MIB, rss * 5, 5, 1024 * MIB, int(i % 3 == 0), 0))
    return buckets


def spec_of(buckets, markers=(), threshold=80.0, slope=3.6, eta=40 * 3600.0):
    return chart_spec(
        list(buckets),
        list(markers),
        now=NOW,
        hours=24,
        threshold_percent=threshold,
        slope_mib_per_hour=slope,
        seconds_to_threshold=eta,
        title="RSS of test · last 24 h",
    )


async def draw(spec) -> Image.Image:
    image = Image.open(io.BytesIO(await render_png(spec)))
    image.load()
    return image


async def test_the_png_is_valid_and_of_the_expected_size():
    spec, caption = spec_of(day_of_buckets())
    image = await draw(spec)
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    assert "RSS **" in caption and "+3.6 MiB/h" in caption and "80 % in 40.0 h" in caption


@pytest.mark.parametrize(
    "change",
    ["threshold", "markers", "history"],
)
async def test_the_png_changes_when_the_threshold_the_markers_or_the_history_change(change):
    base = day_of_buckets()
    before = hashlib.sha256(await render_png(spec_of(base)[0])).hexdigest()
    if change == "threshold":
        spec = spec_of(base, threshold=60.0)[0]
    elif change == "markers":
        spec = spec_of(base, [Marker(NOW - timedelta(hours=3), "fired")])[0]
    else:
        spec = spec_of(day_of_buckets(slope_mib=0.5))[0]
    assert hashlib.sha256(await render_png(spec)).hexdigest() != before


async def test_a_restart_is_a_gap_with_no_line_in_it():
    spec, caption = spec_of(day_of_buckets(gap_hours=(10, 8)))
    assert len(spec["gaps"]) == 1 and len(spec["segments"]) == 2
    assert "1 gap(s) (restarts)" in caption
    image = (await draw(spec)).convert("RGB")
    canvas = chart_png.Canvas(spec)  # the same geometry, at twice the output size
    top, bottom = int(canvas.top / chart_png.SCALE) + 30, int(canvas.bottom / chart_png.SCALE) - 2

    def column_has(t: float, colour: tuple[int, int, int]) -> bool:
        x = int(canvas.x(t) / chart_png.SCALE)
        near = (
            sum((a - b) ** 2 for a, b in zip(image.getpixel((x, y)), colour, strict=True)) for y in range(top, bottom)
        )
        return min(near) < 30**2

    gap_start, gap_end = spec["gaps"][0]
    assert column_has(gap_start - 3600, chart_png.RSS)  # the line before the gap
    assert column_has((gap_start + gap_end) / 2, chart_png.GAP)
    assert not column_has((gap_start + gap_end) / 2, chart_png.RSS)
    assert not column_has((gap_start + gap_end) / 2, chart_png.BAND)


def test_fewer_than_two_points_is_no_chart_with_a_time_to_wait_for():
    with pytest.raises(ChartError, match=r"No chart yet: .* the next at 12:05 UTC"):
        spec_of(day_of_buckets()[:1])


def test_a_threshold_far_above_the_memory_is_said_not_drawn_flat():
    spec, _ = spec_of(day_of_buckets(), slope=None, eta=None)
    assert spec["threshold"] > spec["y_max"]  # 819 MiB of a 1 GiB limit, RSS around 300-390 MiB
    assert spec["projection"] is None


def test_a_rising_trend_toward_a_far_threshold_keeps_the_axis_on_the_data():
    """A leak far below its alert line (74 -> 255 MiB on a 23.5 GiB host) was drawn flat: the
    projection stretched the axis to the 80 % line."""
    buckets = day_of_buckets(slope_mib=0.3)  # 300 -> 386 MiB of a 1 GiB limit: 80 % is 819 MiB
    spec, caption = spec_of(buckets, slope=3.6, eta=120 * 3600.0)
    data_high = max(b.rss_max for b in buckets)
    assert spec["projection"] is not None and spec["y_max"] < 1.3 * spec["projection"][1][1]
    assert spec["y_max"] < spec["threshold"]  # said in the header ("above the chart"), not drawn
    assert spec["y_max"] - spec["y_min"] < 3 * (data_high - min(b.rss_min for b in buckets))
    assert "80 % in 5.0 d" in caption  # the crossing time is said in the caption


# Machado et al. (2009), severity 1: protanopia, deuteranopia, tritanopia, on linear RGB.
DICHROMACIES = (
    ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
    ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
    ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900)),
)


def seen_as(rgb: tuple[int, int, int], matrix) -> tuple[float, ...]:
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def encoded(c: float) -> float:
        c = min(1.0, max(0.0, c))
        return 255 * (12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)

    values = [linear(c) for c in rgb]
    return tuple(encoded(sum(m * v for m, v in zip(row, values, strict=True))) for row in matrix)


def test_the_levels_and_alert_markers_are_told_apart_with_any_colour_vision():
    """Limit and "alert fired" shared one red; red against green is what most colour-blind readers lose."""
    import itertools
    import math

    colours = {"limit": chart_png.LIMIT, "alert line": chart_png.THRESHOLD, "fired": chart_png.FIRED}
    colours |= {"resolved": chart_png.RESOLVED, "plot": chart_png.PLOT}
    for matrix in (((1, 0, 0), (0, 1, 0), (0, 0, 1)), *DICHROMACIES):
        for (a, ca), (b, cb) in itertools.combinations(colours.items(), 2):
            assert math.dist(seen_as(ca, matrix), seen_as(cb, matrix)) > 45, (a, b, matrix)


class TestHistoryRecorder:
    async def test_samples_fold_into_5_minute_buckets_written_when_they_close(self, db):
        recorder = HistoryRecorder(db, retention_hours=1)
        for minute in range(0, 12):
            recorder.add(NOW + timedelta(minutes=minute), (100 + minute) * MIB, 1024 * MIB)
        recorder.note_cleanup(NOW + timedelta(minutes=11), manual=True)
        assert await recorder.flush_due() == 2  # 12:00 and 12:05 closed; 12:10 is open
        buckets = await recorder.load(NOW - timedelta(hours=1))
        assert [(b.start.minute, b.rss_min // MIB, b.rss_max // MIB, b.samples) for b in buckets] == [
            (0, 100, 104, 5),
            (5, 105, 109, 5),
            (10, 110, 111, 2),
        ]
        assert buckets[-1].manual_cleanups == 1

    async def test_rows_past_the_retention_are_deleted_as_new_ones_are_written(self, db):
        recorder = HistoryRecorder(db, retention_hours=1)
        for minute in range(0, 6 * 60, 5):
            recorder.add(NOW + timedelta(minutes=minute), 100 * MIB, 1024 * MIB)
            await recorder.flush_due()
        async with db.transaction() as conn:
            rows = await conn.scalar(select(func.count()).select_from(memory_history))
        assert rows <= 13  # an hour of 5-minute buckets (and the boundary one)

    async def test_a_restart_inside_a_bucket_merges_both_halves(self, db):
        first, second = HistoryRecorder(db, 24), HistoryRecorder(db, 24)
        for minute in (0, 1):
            first.add(NOW + timedelta(minutes=minute), 100 * MIB, 1024 * MIB)
        first.add(NOW + timedelta(minutes=5), 100 * MIB, 1024 * MIB)
        await first.flush_due()
        for minute in (2, 3, 6):
            second.add(NOW + timedelta(minutes=minute), 200 * MIB, 1024 * MIB)
        await second.flush_due()
        (merged, _) = await second.load(NOW - timedelta(hours=1))
        assert (merged.samples, merged.rss_min // MIB, merged.rss_max // MIB) == (4, 100, 200)


async def test_the_history_merges_a_week_the_same_way_on_postgresql(tmp_path, postgres_url):
    from polly.enhanced_database import Database
    from tests.settings import make_settings

    database = Database(make_settings(tmp_path, database_url=postgres_url))
    await database.create_tables()
    async with database.engine.begin() as conn:  # the shared test database: start from an empty table
        await conn.execute(delete(memory_history))
    try:
        recorder = HistoryRecorder(database, retention_hours=168)
        start = NOW - timedelta(days=7)
        for i in range(7 * 24 * 12 + 1):
            recorder.add(start + i * BUCKET, (100 + i % 7) * MIB, 1024 * MIB)
            if i % 50 == 0:
                await recorder.flush_due()
        await recorder.flush_due()
        buckets = await recorder.load(start)
        assert 500 <= len(buckets) <= 700  # 2,016 five-minute rows merged into 20-minute points
        assert min(b.rss_min for b in buckets) == 100 * MIB and max(b.rss_max for b in buckets) == 106 * MIB
        assert all(b.rss_min <= b.rss_mean <= b.rss_max for b in buckets)
        assert sum(b.samples for b in buckets) == 7 * 24 * 12 + 1
    finally:
        await database.dispose()


async def test_a_missing_interpreter_is_a_chart_error_not_a_traceback(monkeypatch, tmp_path):
    """The virtual environment was rebuilt under the running bot: /mem chart says so in one line."""
    import sys

    from polly.chart import render_png
    from polly.history import ChartError

    monkeypatch.setattr(sys, "executable", str(tmp_path / "gone" / "python"))
    with pytest.raises(ChartError, match=r"the Python interpreter .*gone/python cannot be started"):
        await render_png({"title": "x"})


async def test_a_week_s_merged_points_are_not_gaps_and_a_real_stop_is_one(db):
    """A 7-day chart merges the history into 20-minute points: the chart once called every one of
    them a gap ("503 gap(s) (restarts)" for a healthy week, 18 for one 6-hour run)."""
    recorder = HistoryRecorder(db, retention_hours=168)
    run_start = NOW - timedelta(hours=6)
    for i in range(6 * 12):  # one 6-hour run, a sample each 5-minute bucket
        at = run_start + i * BUCKET
        if timedelta(hours=2) <= at - run_start < timedelta(hours=3):
            continue  # the bot was down for an hour
        recorder.add(at, 100 * MIB + i * MIB, 1024 * MIB)
    await recorder.flush_due()
    buckets = await recorder.load(NOW - timedelta(hours=168))
    spec, caption = chart_spec(
        buckets,
        [],
        now=NOW,
        hours=168,
        threshold_percent=80,
        slope_mib_per_hour=None,
        seconds_to_threshold=None,
        title="a week",
    )
    assert len(spec["gaps"]) == 1 and "1 gap(s)" in caption  # the hour down, and nothing else
    gap_start, gap_end = spec["gaps"][0]
    assert (
        gap_start < (run_start + timedelta(hours=2)).timestamp()
        and gap_end > (run_start + timedelta(hours=3)).timestamp()
    )


@pytest.mark.parametrize(
    "case",
    ["levels close together", "eta at the bottom", "a week with gaps", "levels above the chart"],
)
def test_labels_never_overlap_on_the_drawn_chart(case):
    """Measured on the renderer's own layout (every text's box as drawn), not by eye: the ETA label
    used to be printed over the x-axis labels, and two close levels' labels over each other."""
    import itertools

    buckets = day_of_buckets(slope_mib=0.3)
    if case == "levels close together":  # limit 1 GiB, alert at 97 %: the two lines 30 MiB apart
        spec, _ = spec_of(buckets, threshold=97.0, slope=3.6, eta=40 * 3600.0)
        spec["y_max"] = 1100 * MIB
    elif case == "eta at the bottom":
        spec, _ = spec_of(buckets, slope=0.2, eta=2000 * 3600.0)
        spec["y_min"] = spec["projection"][1][1] - 1 * MIB
    elif case == "a week with gaps":
        spec, _ = spec_of(day_of_buckets(gap_hours=(20, 14)), slope=3.6)
        spec["start"] -= 6 * 24 * 3600
    else:
        spec, _ = spec_of(buckets, threshold=90.0, slope=None, eta=None)
        spec["y_max"] = 500 * MIB  # both levels said in the header
    canvas = chart_png.Canvas(spec)
    canvas.render()
    boxes = canvas.labels
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not chart_png._overlap(box_a, box_b), (a, b)
    drawn = [text for text, _ in boxes]
    if spec.get("eta_label"):
        assert spec["eta_label"] in drawn  # moved, not dropped
    assert any(spec["threshold_label"] in text for text in drawn) and any(spec["limit_label"] in t for t in drawn)
