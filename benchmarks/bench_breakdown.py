"""Where the RSS is, on real memory: each of the four states in a fresh process (`benchmarks.rss_states`),
and whether `/mem explain` names the part that holds the memory.

A row's value is the growth of the part the state fills, its baseline the RSS the state added, the
ratio the part's share; it passes when `/mem explain` names that part and it holds at least half of
the growth (the native state also needs Python's objects flat: its verdict, "native memory or large
objects", depends on it).
"""

from __future__ import annotations

from benchmarks._harness import Result, run_child
from polly.formatting import MIB

STATES = (
    ("objects", "python_objects", "3.3 million small live Python objects (2-tuples)"),
    ("burst", "python_free", "a burst of 2 million small objects, 1 in 20 kept"),
    ("native", "malloc_used", "200 MiB from libc's malloc, touched (ctypes)"),
    ("mapped", "file_mapped", "a 200 MiB file mapped and read"),
)
FLAT = 8 * MIB  # Python's objects moving less than this are flat (polly.rss_breakdown.GROWTH_FLOOR)


def rss_breakdown_states() -> list[Result]:
    results = []
    for state, expected, label in STATES:
        found = run_child("benchmarks.rss_states", state, timeout=600)
        growth = float(found["rss_growth"])
        parts: dict[str, int] = found["part_growth"]
        named = found["named"]
        share = parts.get(expected, 0) / growth if growth > 0 else 0.0
        passed = named == expected and share >= 0.5
        if state == "native":
            passed = passed and abs(parts.get("python_objects", 0)) < FLAT
        results.append(
            Result(
                f"/mem explain after {label}: growth of {expected}",
                parts.get(expected, 0) / MIB,
                growth / MIB,
                "MiB",
                "named, ≥ 0.5x of the RSS added",
                passed,
                share,
                f"RSS +{growth / MIB:.1f} MiB; named {named}; {found['verdict']}",
            )
        )
    return results
