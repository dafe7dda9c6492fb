"""malloc_trim off the event loop, rate-limited, and what it gave back measured on the real heap."""

from __future__ import annotations

import ctypes
import threading

import pytest

from polly.formatting import MIB
from polly.heap_trim import HeapTrimmer, malloc_trim
from tests.clocks import FakeClock

glibc = pytest.mark.skipif(malloc_trim is None, reason="needs glibc's malloc_trim")
CHUNK = 64 * 1024  # under glibc's mmap threshold: from the heap, so freed chunks stay until a trim


@glibc
async def test_a_trim_runs_in_a_worker_thread_and_gives_freed_heap_back():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(CHUNK) for _ in range(2048)]  # 128 MiB, touched
    for block in blocks:
        ctypes.memset(block, 1, CHUNK)
    for block in blocks[:-1]:  # the last one pins the top: only a trim can return the rest
        libc.free(block)
    threads = []

    def trim_and_note_the_thread(pad: int) -> int:
        threads.append(threading.current_thread())
        assert malloc_trim is not None
        return malloc_trim(pad)

    trimmer = HeapTrimmer(FakeClock(), trim=trim_and_note_the_thread)
    report = await trimmer.trim()
    libc.free(blocks[-1])
    assert threads and threads[0] is not threading.main_thread()
    assert report.ran and report.returned is not None and report.returned > 100 * MIB
    assert trimmer.last is report


async def test_at_most_one_trim_per_minute_whoever_asks():
    calls = []
    clock = FakeClock()
    trimmer = HeapTrimmer(clock, trim=lambda pad: calls.append(pad) or 1)
    assert (await trimmer.trim()).ran
    skipped = await trimmer.trim()
    assert not skipped.ran and skipped.note.startswith("skipped: the last trim ran")
    clock.advance(61)
    assert (await trimmer.trim()).ran and calls == [0, 0]


async def test_without_malloc_trim_it_says_so():
    report = await HeapTrimmer(FakeClock(), trim=None).trim()
    assert not report.ran and report.note == "no malloc_trim here (glibc only)" and report.returned is None
