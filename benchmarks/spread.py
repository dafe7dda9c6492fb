"""Figures across runs: min / median / max of each, the stored record, and the README's table.

A figure measured once says little on a shared machine, so the published table is drawn from
`benchmarks/record.json`, which keeps every run of every figure; a new run of some
figures (`--only`) replaces theirs and keeps the others'. The README's table sits between
markers and is rewritten from the record (`--readme`); a test checks that it matches the record
and that every figure there was measured at least `PUBLISHED_RUNS` times.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import Result, fmt_value
from polly.formatting import draw_table

PUBLISHED_RUNS = 3
README_BEGIN = "<!-- benchmarks: begin (python -m benchmarks --readme) -->"
README_END = "<!-- benchmarks: end -->"
HEADERS = ("figure", "min", "median", "max", "baseline", "ratio", "budget", "result")


@dataclass(frozen=True)
class Figure:
    """One figure's runs (in order measured), and the date of the last."""

    name: str
    runs: tuple[Result, ...]
    measured: str
    group: str = ""  # the `--only` name that measures it: a new run of it replaces all its figures

    def spread(self) -> tuple[float, float, float]:
        """Min, median, max of the values; 'none' (NaN: nothing measured) ranks above every value."""
        ordered = sorted(self.runs, key=lambda r: (r.value != r.value, r.value))
        values = [r.value for r in ordered]
        half = len(values) // 2
        middle = values[half] if len(values) % 2 else _mean_or_none(values[half - 1 : half + 1])
        return values[0], middle, values[-1]

    def row(self) -> tuple[str, ...]:
        unit = self.runs[0].unit
        low, middle, high = self.spread()
        baseline = statistics.median(r.baseline for r in self.runs)
        ratios = [r.ratio for r in self.runs if r.ratio is not None]
        passed = sum(r.passed for r in self.runs)
        return (
            self.name,
            fmt_value(low, unit),
            fmt_value(middle, unit),
            fmt_value(high, unit),
            fmt_value(baseline, unit),
            f"{statistics.median(ratios):.2f}x" if ratios else "",
            self.runs[-1].budget,
            f"{'pass' if passed == len(self.runs) else 'FAIL'} {passed}/{len(self.runs)}",
        )


def _mean_or_none(pair: list[float]) -> float:
    return sum(pair) / 2 if all(v == v for v in pair) else float("nan")


def figures(runs: list[list[Result]], measured: str, groups: dict[str, str] | None = None) -> list[Figure]:
    """The runs of one invocation grouped by figure, in the order first measured; `groups` maps a
    figure to the `--only` name that measures it."""
    by_name: dict[str, list[Result]] = {}
    for run in runs:
        for result in run:
            by_name.setdefault(result.figure, []).append(result)
    groups = groups or {}
    return [Figure(name, tuple(results), measured, groups.get(name, "")) for name, results in by_name.items()]


def load(path: Path) -> list[Figure]:
    """The record's figures (none if there is no record, or it predates runs being kept)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [
        Figure(f["figure"], tuple(Result(**r) for r in f["runs"]), f["measured"], f.get("group", ""))
        for f in data.get("figures", [])
    ]


def merge(old: list[Figure], new: list[Figure]) -> list[Figure]:
    """The record after a run: a group measured again replaces all its figures (one renamed or
    dropped does not linger), where its first one was; figures of new groups go last."""
    rerun = {f.group for f in new}
    merged: list[Figure] = []
    placed: set[str] = set()
    for figure in old:
        if figure.group not in rerun:
            merged.append(figure)
        elif figure.group not in placed:
            placed.add(figure.group)
            merged += [f for f in new if f.group == figure.group]
    return merged + [f for f in new if f.group not in placed]


def dump(path: Path, record: list[Figure], about: dict[str, Any]) -> None:
    payload = {
        **about,
        "figures": [
            {"figure": f.name, "group": f.group, "measured": f.measured, "runs": [r.to_dict() for r in f.runs]}
            for f in record
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def table(record: list[Figure]) -> str:
    return draw_table([f.row() for f in record], HEADERS, markdown=True)


def readme_section(record: list[Figure]) -> str:
    """What goes between the README's markers."""
    dates = sorted({f.measured for f in record})
    runs = sorted({len(f.runs) for f in record})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    counts = "/".join(map(str, runs))
    return (
        f"Runs per figure: {counts}, measured {when} (UTC); min, median and max across runs, each run "
        "itself a median of interleaved repeats; baseline and ratio are the medians across runs.\n\n" + table(record)
    )


def rewrite_readme(readme: Path, record: list[Figure]) -> None:
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {README_BEGIN!r} … {README_END!r} markers")
    section = f"{README_BEGIN}\n{readme_section(record)}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: section, text, count=1))


def readme_table(readme_text: str) -> str | None:
    """The section between the README's markers (None without them)."""
    begin, end = readme_text.find(README_BEGIN), readme_text.find(README_END)
    if begin < 0 or end < begin:
        return None
    return readme_text[begin + len(README_BEGIN) : end].strip()
