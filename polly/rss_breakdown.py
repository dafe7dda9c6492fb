"""Where the RSS is: Python objects, the allocators' free space, native memory, mapped files.

The parts, named as in `/metrics` (`polly_memory_breakdown_bytes{part=...}`) and `/health/memory`:

- `python_objects`: bytes in pymalloc blocks in use (Python's objects of up to 512 bytes);
- `python_free`: the rest of pymalloc's arenas (an arena goes back to the OS only when empty);
- `malloc_used`: glibc's chunks in use: Python objects over 512 bytes and native allocations;
- `malloc_free`: freed chunks glibc keeps (what `malloc_trim` may return);
- `file_mapped`: file-backed and shared pages (code, libraries, mapped files);
- `other`: anonymous RSS no counter explains (thread stacks, direct mmaps, other allocators).

The allocators count what they hold, touched or not; RSS counts touched pages. So the free parts
are upper bounds: when the counted parts exceed the anonymous RSS, the free parts are cut to fit
(python_free first: an arena's pages are touched as its pools are first used) and marked "at
most". Pure: the readings come in (`polly.allocator_stats`), a breakdown and a verdict come out.
"""

from __future__ import annotations

from typing import Any

from polly.allocator_stats import Allocator, MallocStats, PymallocStats, Unavailable
from polly.formatting import MIB
from polly.records import asdict, record, replace

PARTS = ("python_objects", "python_free", "malloc_used", "malloc_free", "file_mapped", "other")
LABELS = {
    "python_objects": "Python objects",
    "python_free": "Python free space",
    "malloc_used": "malloc in use",
    "malloc_free": "malloc free space",
    "file_mapped": "mapped files",
    "other": "unexplained",
}
FREE_PARTS = ("python_free", "malloc_free")
# A change smaller than this (or than 2 % of RSS) is page noise, not a part that grew.
GROWTH_FLOOR = 8 * MIB


@record
class Part:
    name: str
    bytes: int | None  # None: unavailable (see `why`)
    why: str | None = None
    at_most: bool = False  # free space counted beyond the resident pages it could occupy was cut

    @property
    def label(self) -> str:
        return LABELS[self.name]


@record
class RssBreakdown:
    rss: int
    parts: tuple[Part, ...]
    malloc: str  # the allocator behind malloc ("glibc 2.36", "jemalloc (LD_PRELOAD)")
    python: str  # where Python's small objects come from ("pymalloc")

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def bytes_of(self, name: str) -> int | None:
        return self.part(name).bytes

    @property
    def free(self) -> int:
        """Free space the allocators keep (the parts that are readable)."""
        return sum(self.bytes_of(name) or 0 for name in FREE_PARTS)

    def largest(self) -> Part:
        return max((p for p in self.parts if p.bytes is not None), key=lambda p: p.bytes or 0)

    def to_dict(self) -> dict[str, Any]:
        return {"rss": self.rss, "malloc": self.malloc, "python": self.python, "parts": [asdict(p) for p in self.parts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RssBreakdown:
        parts = tuple(Part(**p) for p in data["parts"] if p.get("name") in LABELS)
        return cls(data["rss"], parts, data.get("malloc", "?"), data.get("python", "?"))


def compose(
    rss: int,
    anon: int | None,
    file: int | None,
    shmem: int | None,
    pymalloc: PymallocStats | Unavailable,
    malloc: MallocStats | Unavailable,
    allocator: Allocator,
) -> RssBreakdown:
    """The six parts of `rss` from the process's status split and the allocators' statistics."""
    file_mapped = (
        Part("file_mapped", file + shmem)
        if file is not None and shmem is not None
        else Part("file_mapped", None, "the kernel does not split RSS here (/proc/self/status: Linux 4.5 or later)")
    )
    if isinstance(pymalloc, Unavailable):
        python = [Part("python_objects", None, pymalloc.why), Part("python_free", None, pymalloc.why)]
    else:
        python = [Part("python_objects", pymalloc.allocated), Part("python_free", pymalloc.free)]
    if isinstance(malloc, Unavailable):
        native = [Part("malloc_used", None, malloc.why), Part("malloc_free", None, malloc.why)]
    else:
        native = [Part("malloc_used", malloc.in_use), Part("malloc_free", malloc.free)]
    anonymous = anon if anon is not None else rss - (file_mapped.bytes or 0)
    counted = _fit([*python, *native], anonymous)
    other = max(0, anonymous - sum(p.bytes or 0 for p in counted))
    return RssBreakdown(rss, (*counted, file_mapped, Part("other", other)), allocator.malloc, allocator.python)


def _fit(parts: list[Part], anonymous: int) -> list[Part]:
    """Cut the free parts (python_free, then malloc_free) by what the parts count beyond `anonymous`."""
    excess = sum(p.bytes or 0 for p in parts) - anonymous
    fitted = []
    for part in parts:
        if excess > 0 and part.name in FREE_PARTS and part.bytes:
            cut = min(excess, part.bytes)
            excess -= cut
            part = replace(part, bytes=part.bytes - cut, at_most=True)
        fitted.append(part)
    return fitted


@record
class PartChange:
    name: str
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before

    @property
    def label(self) -> str:
        return LABELS[self.name]


def changes(before: RssBreakdown, after: RssBreakdown) -> list[PartChange]:
    """Each part readable at both times, the largest growth first."""
    found = []
    for name in PARTS:
        a, b = before.bytes_of(name), after.bytes_of(name)
        if a is not None and b is not None:
            found.append(PartChange(name, a, b))
    return sorted(found, key=lambda c: c.change, reverse=True)


def grown_part(before: RssBreakdown, after: RssBreakdown) -> PartChange | None:
    """The part that grew most, when its growth is more than noise (GROWTH_FLOOR and 2 % of RSS)."""
    ordered = changes(before, after)
    if not ordered:
        return None
    top = ordered[0]
    return top if top.change >= max(GROWTH_FLOOR, 0.02 * after.rss) else None
