"""Sizes, durations and sparklines as people read them."""

from __future__ import annotations

from polly.formatting import MIB, draw_table, format_bytes, format_duration, sparkline


def test_formatting_for_people():
    assert format_bytes(1536 * 1024) == "1.5 MiB"
    assert format_bytes(3 * 1024 * MIB) == "3.0 GiB"
    assert format_bytes(-2 * MIB) == "-2.0 MiB"
    assert format_duration(0.0123) == "12 ms"
    assert format_duration(42) == "42.0 s"
    assert format_duration(600) == "10 min"
    assert format_duration(7200) == "2.0 h"
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5]) == "▁▁"


def column_starts(line: str, cells: list[str]) -> list[int]:
    """The display column at which each cell starts in a drawn line (wide characters count 2)."""
    from wcwidth import wcswidth

    starts, position = [], 0
    for cell in cells:
        index = line.index(cell, position)
        starts.append(wcswidth(line[:index]))
        position = index + len(cell)
    return starts


def test_wide_and_combining_characters_keep_the_columns_aligned():
    rows = [("キャッシュ", "1", "ok"), ("cafe\u0301", "22", "ok"), ("plain", "333", "ok"), ("émoji 🎉", "4", "ok")]
    lines = draw_table(rows, ("name", "n", "state")).splitlines()
    assert len(lines) == 2 + len(rows)
    starts = {tuple(column_starts(line, list(row))) for line, row in zip(lines[2:], rows, strict=True)}
    assert len(starts) == 1, lines  # every row's columns start at the same display column
    assert column_starts(lines[0], ["name", "n", "state"]) == list(starts.pop())
    assert all(line == line.rstrip() for line in lines)  # no trailing blanks inside Discord's limits


def test_a_markdown_table_for_the_benchmarks():
    lines = draw_table([("tick", "1.2x")], ("figure", "ratio"), markdown=True).splitlines()
    assert lines[0].startswith("| figure") and set(lines[1]) <= {"|", "-", ":"} and "| tick" in lines[2]


def test_an_empty_table_is_its_header():
    assert draw_table([], ("a", "b")).splitlines() == ["a    b", "---  ---"]
