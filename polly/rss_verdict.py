"""What an operator reads from an RSS breakdown (`polly.rss_breakdown`): one sentence, and what
to do for the part it is about. Loaded when a breakdown is shown (/mem stats, /mem explain,
/health/memory), not by the checkpoints that store one."""

from __future__ import annotations

from polly.formatting import format_bytes
from polly.records import record
from polly.rss_breakdown import FREE_PARTS, GROWTH_FLOOR, RssBreakdown, grown_part

# Free space above this share of RSS (and GROWTH_FLOOR) is worth saying: fragmentation.
FRAGMENTED_SHARE = 0.3


@record
class Verdict:
    part: str  # the part the verdict is about
    sentence: str  # one sentence for /mem stats
    advice: str  # what to do, for /mem explain


def verdict(now: RssBreakdown, before: RssBreakdown | None = None) -> Verdict:
    """One sentence an operator can act on: the part that grew since `before` when one did,
    else large free space (fragmentation), else where most of RSS is."""
    grown = grown_part(before, now) if before is not None else None
    if grown is not None:
        flat_python = _python_flat(before, now) if before is not None else True
        return _about(grown.name, now, f"{grown.label} grew by {format_bytes(grown.change)}", flat_python)
    free = now.free
    if free >= GROWTH_FLOOR and free >= FRAGMENTED_SHARE * now.rss:
        part = max(FREE_PARTS, key=lambda name: now.bytes_of(name) or 0)
        return _about(part, now, f"{format_bytes(free)} of RSS ({100 * free / now.rss:.0f} %) is free space")
    largest = now.largest()
    share = 100 * (largest.bytes or 0) / now.rss if now.rss else 0.0
    return _about(largest.name, now, f"Most of RSS is {largest.label} ({share:.0f} %)")


def _python_flat(before: RssBreakdown, now: RssBreakdown) -> bool:
    a, b = before.bytes_of("python_objects"), now.bytes_of("python_objects")
    return a is None or b is None or abs(b - a) < max(GROWTH_FLOOR, 0.02 * now.rss)


def _about(part: str, now: RssBreakdown, fact: str, python_flat: bool = True) -> Verdict:
    if part == "python_objects":
        return Verdict(
            part,
            f"{fact}: live Python objects, the growing types say which.",
            "Compare checkpoints (`/mem checkpoint`) for the types that grow, then `/mem inspect type:<name>` "
            "for who holds them.",
        )
    if part in FREE_PARTS:
        return Verdict(
            part,
            f"{fact} kept by the allocators: fragmentation, not a leak.",
            "pymalloc returns an arena only when all of it is free, glibc keeps freed chunks: new objects reuse "
            "this space, so it does not grow without a burst. `/mem cleanup` runs `malloc_trim` and says what "
            "came back; with many threads, `MALLOC_ARENA_MAX=2` bounds glibc's per-thread arenas.",
        )
    if part == "malloc_used":
        what = "native memory or large objects" if python_flat else "large Python objects or native memory"
        return Verdict(
            part,
            f"{fact}: {what}, outside pymalloc.",
            "Objects over 512 bytes (long strings, bytes, big lists and dicts) and C extensions allocate from "
            "malloc: `/mem trace` shows the Python call paths that allocate; memory a C library allocates "
            "itself is seen by no Python tool (memray's native mode finds it).",
        )
    if part == "file_mapped":
        return Verdict(
            part,
            f"{fact}: mapped files, not the heap.",
            "Code, shared libraries and memory-mapped files: the kernel drops clean file pages under pressure; "
            "a growing figure is a file mapped and read (mmap) or shared memory.",
        )
    return Verdict(
        part,
        f"{fact}: memory no allocator statistic explains.",
        f"Thread stacks, direct mmaps or an allocator Polly cannot read (malloc: {now.malloc}); "
        "compare the thread count, and `/mem trace` for Python's own allocations.",
    )
