"""Sizes, durations and sparklines as people read them."""

from __future__ import annotations

from polly.formatting import MIB, format_bytes, format_duration, sparkline


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
