"""Where the RSS is: the allocators' statistics (recorded and real), the parts, the verdict."""

from __future__ import annotations

import ctypes
import os

import pytest

from polly import allocator_stats
from polly.allocator_stats import (
    Allocator,
    MallocStats,
    PymallocStats,
    Unavailable,
    capture_fd2,
    detect_allocator,
    malloc_arenas,
    parse_debugmallocstats,
    read_malloc,
    read_pymalloc,
    split_output,
)
from polly.formatting import MIB
from polly.rss_breakdown import PARTS, RssBreakdown, changes, compose, grown_part
from polly.rss_verdict import verdict
from tests.conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "mallocstats"
GLIBC = Allocator("glibc 2.36", "pymalloc", glibc=True, pymalloc=True)
glibc_only = pytest.mark.skipif(not detect_allocator().glibc, reason="needs glibc's mallinfo2")


# ---------------------------------------------------------------- pymalloc's statistics


def test_pymallocs_totals_from_a_recorded_output():
    stats = parse_debugmallocstats((FIXTURES / "python311_pymalloc.txt").read_text())
    assert stats == PymallocStats(arenas=17, arena_bytes=17_825_792, allocated=16_789_376)
    assert stats.free == 17_825_792 - 16_789_376


def test_without_pymalloc_the_part_says_why():
    """PYTHONMALLOC=malloc: _debugmallocstats prints only the free lists, no arenas."""
    found = parse_debugmallocstats((FIXTURES / "python311_malloc.txt").read_text())
    assert isinstance(found, Unavailable) and "pymalloc" in found.why
    off = detect_allocator({"PYTHONMALLOC": "malloc"})
    assert not off.pymalloc and off.python == "malloc (PYTHONMALLOC=malloc)"
    assert isinstance(read_pymalloc(off), Unavailable)


def test_what_else_reached_stderr_during_the_capture_goes_back(capfd):
    recorded = (FIXTURES / "python311_pymalloc.txt").read_text()
    lines = recorded.splitlines(keepends=True)

    def stats_with_a_log_line_in_between() -> None:
        os.write(2, "".join(lines[:30]).encode())
        os.write(2, b"[2026-12-02 11:00:00] [WARNING ] discord.gateway: a log line from another thread\n")
        os.write(2, "".join(lines[30:]).encode())

    captured = capture_fd2(stats_with_a_log_line_in_between)
    assert parse_debugmallocstats(captured) == parse_debugmallocstats(recorded)
    assert "log line" not in captured
    assert capfd.readouterr().err == (
        "[2026-12-02 11:00:00] [WARNING ] discord.gateway: a log line from another thread\n"
    )
    stats, others = split_output(recorded)
    assert others == "" and stats == recorded


def test_pymalloc_counts_the_real_processs_small_objects():
    allocator = detect_allocator()
    if not allocator.pymalloc:
        pytest.skip("this interpreter does not use pymalloc")
    before = read_pymalloc(allocator)
    keep = [(i, i) for i in range(500_000)]  # ~32 MiB of 64-byte tuples
    after = read_pymalloc(allocator)
    assert isinstance(before, PymallocStats) and isinstance(after, PymallocStats)
    assert after.allocated - before.allocated > 28 * MIB
    assert after.arena_bytes >= after.allocated
    del keep


# ---------------------------------------------------------------- glibc's statistics


@glibc_only
def test_malloc_in_use_follows_a_native_allocation():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = read_malloc(GLIBC)
    block = libc.malloc(64 * MIB)
    ctypes.memset(block, 1, 64 * MIB)
    during = read_malloc(GLIBC)
    libc.free(block)
    after = read_malloc(GLIBC)
    assert isinstance(before, MallocStats) and isinstance(during, MallocStats) and isinstance(after, MallocStats)
    assert during.in_use - before.in_use >= 64 * MIB
    assert during.in_use - after.in_use >= 64 * MIB


def test_another_allocator_in_front_of_malloc_is_named_and_its_parts_unavailable(tmp_path):
    preloaded = detect_allocator({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"})
    assert preloaded.malloc == "jemalloc (LD_PRELOAD)" and not preloaded.glibc
    found = read_malloc(preloaded)
    assert isinstance(found, Unavailable) and "jemalloc" in found.why
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f10 r-xp 00000000 08:01 42 /usr/lib/libmimalloc.so.2.1\n")
    assert detect_allocator({}, maps).malloc == "mimalloc (linked)"
    assert "glibc" in detect_allocator({}, tmp_path / "no-maps").malloc or not detect_allocator().glibc


@glibc_only
def test_glibcs_arenas_are_counted():
    arenas = malloc_arenas(detect_allocator())
    assert arenas is not None and arenas >= 1
    assert malloc_arenas(Allocator("musl or another libc", "pymalloc", glibc=False, pymalloc=True)) is None


def test_a_libc_without_mallinfo2_is_said(monkeypatch):
    monkeypatch.setattr(allocator_stats, "_mallinfo2", lambda: None)
    found = read_malloc(Allocator("glibc 2.31", "pymalloc", glibc=True, pymalloc=True))
    assert isinstance(found, Unavailable) and "2.33" in found.why


# ---------------------------------------------------------------- the parts


def breakdown(objects=100, py_free=10, used=40, free=5, anon=160, file=30, shmem=2, rss=None) -> RssBreakdown:
    return compose(
        (rss or anon + file + shmem) * MIB,
        anon * MIB,
        file * MIB,
        shmem * MIB,
        PymallocStats(0, (objects + py_free) * MIB, objects * MIB),
        MallocStats(used * MIB, free * MIB, 0, 0),
        GLIBC,
    )


def test_the_parts_add_up_to_rss_with_the_rest_as_other():
    found = breakdown()
    assert [p.name for p in found.parts] == list(PARTS)
    assert sum(p.bytes or 0 for p in found.parts) == found.rss
    assert found.bytes_of("file_mapped") == 32 * MIB and found.bytes_of("other") == 5 * MIB
    assert not any(p.at_most for p in found.parts)
    assert RssBreakdown.from_dict(found.to_dict()) == found


def test_free_space_counted_beyond_the_resident_pages_is_cut_and_said_at_most():
    found = breakdown(objects=100, py_free=50, used=40, free=20, anon=170)  # 210 counted, 170 resident
    assert found.bytes_of("python_free") == 10 * MIB and found.part("python_free").at_most
    assert found.bytes_of("malloc_free") == 20 * MIB and not found.part("malloc_free").at_most
    assert found.bytes_of("other") == 0 and sum(p.bytes or 0 for p in found.parts) == found.rss


def test_unreadable_sources_leave_their_parts_unavailable_with_why_and_nothing_guessed():
    found = compose(100 * MIB, None, None, None, Unavailable("no pymalloc"), Unavailable("malloc is jemalloc"), GLIBC)
    assert found.part("python_objects").why == "no pymalloc" and found.bytes_of("python_objects") is None
    assert found.part("malloc_free").why == "malloc is jemalloc"
    assert "Linux 4.5" in (found.part("file_mapped").why or "")
    assert found.bytes_of("other") == 100 * MIB  # all of it unexplained, said as such
    assert verdict(found).part == "other"


# ---------------------------------------------------------------- the verdict


def test_each_part_that_holds_the_memory_gets_its_verdict():
    assert verdict(breakdown(objects=200, py_free=5, used=10, free=1, anon=220)).part == "python_objects"
    fragmented = verdict(breakdown(objects=20, py_free=150, used=10, free=2, anon=190))
    assert fragmented.part == "python_free" and "not a leak" in fragmented.sentence
    native = verdict(breakdown(objects=20, py_free=2, used=200, free=2, anon=230))
    assert native.part == "malloc_used" and "native memory or large objects" in native.sentence
    assert "/mem trace" in native.advice
    mapped = verdict(breakdown(objects=20, py_free=2, used=10, free=2, anon=40, file=200))
    assert mapped.part == "file_mapped" and "not the heap" in mapped.sentence


def test_the_part_that_grew_since_a_checkpoint_decides_over_the_largest():
    before = breakdown(objects=200, used=20, anon=240)
    after = breakdown(objects=202, used=80, anon=302)
    assert next(c.name for c in changes(before, after)) == "malloc_used"
    assert not any(p.at_most for p in (*before.parts, *after.parts))
    grown = grown_part(before, after)
    assert grown is not None and grown.change == 60 * MIB
    found = verdict(after, before)
    assert found.part == "malloc_used" and found.sentence.startswith("malloc in use grew by 60.0 MiB")
    assert grown_part(before, breakdown(objects=203, used=22, anon=245)) is None  # 5 MiB: noise


def test_the_process_really_splits_as_status_says():
    """The tick's split (anon + file + shmem) is the process's RSS: the breakdown's base."""
    from polly.process_stats import current_process

    memory = current_process().memory_info()
    if memory.anon is None:
        pytest.skip("no RSS split here")
    assert memory.anon + (memory.file or 0) + (memory.shmem or 0) == memory.rss
