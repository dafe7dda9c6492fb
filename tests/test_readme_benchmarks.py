"""The README's benchmark table is the record's, with each figure's spread across runs."""

from __future__ import annotations

import re

from benchmarks import spread
from benchmarks.__main__ import DEFAULT_JSON, README
from benchmarks._harness import Result

SEPARATOR = re.compile(r"^\|[-| :]+\|$")


def markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Each Markdown table as (header cells, body rows of cells)."""
    tables, lines = [], text.splitlines()
    for i in range(1, len(lines)):
        if SEPARATOR.match(lines[i].strip()) and lines[i - 1].lstrip().startswith("|"):
            cells = [c.strip() for c in lines[i - 1].strip().strip("|").split("|")]
            body = []
            for line in lines[i + 1 :]:
                if not line.lstrip().startswith("|"):
                    break
                body.append([c.strip() for c in line.strip().strip("|").split("|")])
            tables.append((cells, body))
    return tables


def test_the_readme_table_is_drawn_from_the_record():
    record = spread.load(DEFAULT_JSON)
    assert record, f"{DEFAULT_JSON} holds no figures: run python -m benchmarks --runs 3 --readme"
    published = spread.readme_table(README.read_text())
    assert published is not None, "the README lost its benchmark markers"
    assert published == spread.readme_section(record), (
        "the README's benchmark table differs from benchmarks/record.json: python -m benchmarks --runs 3 --readme"
    )


def test_every_published_figure_has_its_spread_across_runs():
    record = spread.load(DEFAULT_JSON)
    thin = [f"{f.name} ({len(f.runs)} run(s))" for f in record if len(f.runs) < spread.PUBLISHED_RUNS]
    assert not thin, f"published with fewer than {spread.PUBLISHED_RUNS} runs: {thin}"
    for figure in record:
        finite = [v for v in figure.spread() if v == v]  # NaN: "none", nothing measured
        assert finite == sorted(finite), figure.name


def test_every_benchmark_table_in_the_readme_says_min_median_and_max():
    """A table with a budget column is a benchmark's: it must carry its spread, not one figure."""
    tables = [(header, body) for header, body in markdown_tables(README.read_text()) if "budget" in header]
    assert tables
    for header, body in tables:
        assert {"min", "median", "max"} <= set(header), f"a benchmark table without its spread: {header}"
        for row in body:
            assert len(row) == len(header), row


def result(figure: str, value: float) -> Result:
    return Result(figure, value, 1.0, "ms", "reported", value < 5, ratio=value)


def test_a_figure_says_min_median_and_max_and_how_many_runs_passed():
    (figure,) = spread.figures([[result("tick", 3.0)], [result("tick", 1.0)], [result("tick", 7.0)]], "2026-12-02")
    assert figure.spread() == (1.0, 3.0, 7.0)
    assert figure.row() == ("tick", "1.0 ms", "3.0 ms", "7.0 ms", "1.0 ms", "3.00x", "reported", "FAIL 2/3")
    never = spread.figures([[result("leak", float("nan"))], [result("leak", 2.0)], [result("leak", 4.0)]], "d")
    low, middle, high = never[0].spread()
    assert (low, middle) == (2.0, 4.0) and high != high  # "none" (never detected) ranks above every time


def test_a_new_run_of_some_groups_replaces_all_their_figures_and_keeps_the_others():
    groups = {"a": "tick", "b": "heap", "b-renamed": "heap", "old-b": "heap", "c": "fleet"}
    old = spread.figures([[result("a", 1.0), result("old-b", 9.0), result("b", 2.0)]], "2026-12-01", groups)
    new = spread.figures([[result("b-renamed", 3.0), result("c", 4.0)]], "2026-12-02", groups)
    merged = spread.merge(old, new)
    assert [(f.name, f.measured, f.runs[0].value) for f in merged] == [
        ("a", "2026-12-01", 1.0),
        ("b-renamed", "2026-12-02", 3.0),  # where the group's first figure was; old-b and b gone
        ("c", "2026-12-02", 4.0),
    ]


def test_every_published_figure_says_which_benchmark_measures_it():
    assert all(f.group for f in spread.load(DEFAULT_JSON))
