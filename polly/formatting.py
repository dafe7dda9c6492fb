"""Sizes, durations and sparklines for people: MiB/GiB with one decimal; ms, s, min, h, d."""

from __future__ import annotations

from collections.abc import Sequence

MIB = 1024 * 1024


def format_bytes(value: float | None, *, signed: bool = False) -> str:
    """Sizes for people: MiB or GiB with one decimal; `signed` shows + for growth."""
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ("+" if signed else "")
    value = abs(value)
    if value >= 1024 * MIB:
        return f"{sign}{value / (1024 * MIB):.1f} GiB"
    return f"{sign}{value / MIB:.1f} MiB"


def format_size_estimate(value: float | None) -> str:
    """Like format_bytes, but a small non-zero estimate reads "< 0.1 MiB" rather than "0.0 MiB"."""
    if value is not None and 0 < value < 0.05 * MIB:
        return "< 0.1 MiB"
    return format_bytes(value)


def format_duration(seconds: float | None) -> str:
    """Durations for people: ms, s, min, h or d."""
    if seconds is None:
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


SPARK_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= 0:
        return SPARK_BARS[0] * len(values)
    return "".join(SPARK_BARS[min(7, int((v - low) / span * 8))] for v in values)


def draw_table(rows: Sequence[Sequence[object]], headers: Sequence[str], *, markdown: bool = False) -> str:
    """Left-aligned columns under a rule of dashes (or a GitHub Markdown table), by tabulate.

    Columns are aligned by display width (tabulate with wcwidth), so wide (East Asian) and combining
    characters do not push the columns after them. tabulate and wcwidth cost ~2.6 MiB of RSS, so
    they are imported here, when the first table is drawn, never at start."""
    from tabulate import tabulate  # on first use: the started bot never draws a table

    drawn = tabulate(
        [[str(cell) for cell in row] for row in rows],
        list(headers),
        tablefmt="github" if markdown else "simple",
        stralign="left",
        numalign="left",
        disable_numparse=True,
    )
    return "\n".join(line.rstrip() for line in drawn.splitlines())
