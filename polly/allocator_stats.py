"""What the allocators say: pymalloc's arenas, glibc's heap, and which allocator is in use.

pymalloc publishes its figures only through `sys._debugmallocstats()`, which prints them to the
C-level stderr (fd 2). They are captured by pointing fd 2 at an anonymous file for the call
(about 1 ms at 400 MiB of small objects); whatever else the process wrote to fd 2 meanwhile
(a log line from another thread) is written back to the real stderr, so nothing is lost. glibc's
come from `mallinfo2()` (glibc 2.33+; ctypes is loaded by the bot already), summed over every
malloc arena. Each source that cannot be read says why (`Unavailable`); nothing is estimated.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, cast

from polly.records import record

OTHER_ALLOCATORS = ("jemalloc", "mimalloc", "tcmalloc")
MALLINFO2_FIELDS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)
_STATS_LINE = re.compile(
    r"^(Small block threshold|class +size|-----|# |\d+ arenas \*|\d+ unused pools \*|Total +=|arena map counts"
    r"|\s*\d+(\s+\d+){4}\s*$|\s*\d+ free .* bytes each +=)"
)
_NUMBER = re.compile(r"=\s*([\d,]+)\s*$")


@record
class Unavailable:
    """A source that could not be read, and why (said to the operator as is)."""

    why: str


@record
class PymallocStats:
    arenas: int  # arenas allocated now
    arena_bytes: int  # arenas times their size: what pymalloc holds from the OS (resident where touched)
    allocated: int  # bytes in blocks in use: Python's small objects

    @property
    def free(self) -> int:
        """Arena space not in use: free blocks, empty pools, headers (an arena goes back only when empty)."""
        return max(0, self.arena_bytes - self.allocated)


@record
class MallocStats:
    in_use: int  # uordblks + hblkhd: chunks in use in the heaps, and mmapped chunks
    free: int  # fordblks: freed chunks glibc keeps (malloc_trim can give back what is whole pages)
    arenas: int  # heap bytes glibc holds (main heap and per-thread arenas)
    releasable: int  # keepcost: the top chunk, what a plain trim of the main heap returns


@record
class Allocator:
    """Who serves malloc and Python's small objects here."""

    malloc: str  # "glibc 2.36", "jemalloc (LD_PRELOAD)", "musl or another libc"
    python: str  # "pymalloc", "malloc (PYTHONMALLOC=malloc)", ...
    glibc: bool  # mallinfo2 describes malloc (glibc, no other allocator in front of it)
    pymalloc: bool


def parse_debugmallocstats(text: str) -> PymallocStats | Unavailable:
    """The arena and block totals of `sys._debugmallocstats()`'s output."""
    arenas = arena_bytes = allocated = None
    for line in text.splitlines():
        number = _NUMBER.search(line)
        if number is None:
            continue
        value = int(number.group(1).replace(",", ""))
        if line.startswith("# arenas allocated current"):
            arenas = value
        elif " arenas * " in line and "bytes/arena" in line:
            arena_bytes = value
        elif line.startswith("# bytes in allocated blocks"):
            allocated = value
    if arenas is None or arena_bytes is None or allocated is None:
        return Unavailable("pymalloc printed no arena statistics (not in use in this interpreter)")
    return PymallocStats(arenas, arena_bytes, allocated)


def split_output(text: str) -> tuple[str, str]:
    """(pymalloc's statistics, every other line): what else reached fd 2 during the capture."""
    stats: list[str] = []
    others: list[str] = []
    for line in text.splitlines(keepends=True):
        (stats if _STATS_LINE.match(line) or not line.strip() else others).append(line)
    return "".join(stats), "".join(others)


def capture_fd2(write: Callable[[], None]) -> str:
    """What `write()` printed to fd 2; anything else printed there meanwhile goes back to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with _anonymous_file() as buffer:
        os.dup2(buffer.fileno(), 2)
        try:
            write()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        buffer.seek(0)
        text = buffer.read().decode("utf-8", "replace")
    stats, others = split_output(text)
    if others:
        os.write(2, others.encode())
    return stats


def _anonymous_file() -> IO[bytes]:
    if hasattr(os, "memfd_create"):  # Linux: no file on disk
        return os.fdopen(os.memfd_create("polly-mallocstats"), "w+b")
    return tempfile.TemporaryFile()


def read_pymalloc(allocator: Allocator) -> PymallocStats | Unavailable:
    if not allocator.pymalloc:
        return Unavailable(f"Python's small objects come from {allocator.python} (counted under malloc)")
    stats_writer = getattr(sys, "_debugmallocstats", None)
    if stats_writer is None:
        return Unavailable("this Python has no sys._debugmallocstats")
    try:
        return parse_debugmallocstats(capture_fd2(stats_writer))
    except OSError as exc:
        return Unavailable(f"pymalloc's statistics could not be captured ({exc.strerror or exc})")


def read_malloc(allocator: Allocator) -> MallocStats | Unavailable:
    if not allocator.glibc:
        return Unavailable(f"malloc is {allocator.malloc}: glibc's mallinfo2() does not describe it")
    mallinfo2 = _mallinfo2()
    if mallinfo2 is None:
        return Unavailable(f"{allocator.malloc} has no mallinfo2() (glibc 2.33 or later has)")
    info = mallinfo2()
    return MallocStats(info.uordblks + info.hblkhd, info.fordblks, info.arena + info.hblkhd, info.keepcost)


@functools.cache
def _mallinfo2() -> Callable[[], Any] | None:
    """glibc's mallinfo2 with its result type, looked up once (None where there is none)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]

    try:
        function = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    function.restype = MallInfo2
    function.argtypes = []
    return cast("Callable[[], Any]", function)


def malloc_arenas(allocator: Allocator) -> int | None:
    """How many malloc arenas glibc has made (`malloc_info`'s heaps): one per thread that
    allocated concurrently, up to `MALLOC_ARENA_MAX` (8 per core by default). None elsewhere."""
    if not allocator.glibc:
        return None
    import ctypes

    libc = ctypes.CDLL(None)
    try:
        open_memstream, malloc_info = libc.open_memstream, libc.malloc_info
    except AttributeError:
        return None
    open_memstream.restype = ctypes.c_void_p
    open_memstream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)]
    malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.free.argtypes = [ctypes.c_void_p]
    buffer, size = ctypes.c_void_p(), ctypes.c_size_t()
    stream = open_memstream(ctypes.byref(buffer), ctypes.byref(size))
    if not stream:
        return None
    malloc_info(0, stream)
    libc.fclose(stream)
    try:
        return ctypes.string_at(buffer.value, size.value).count(b'<heap nr="') if buffer.value else None
    finally:
        libc.free(buffer)


def detect_allocator(environ: Mapping[str, str] | None = None, maps: Path = Path("/proc/self/maps")) -> Allocator:
    """glibc, musl, or an allocator in front of malloc (preloaded or linked: seen in the
    process's mappings); and whether Python's small objects come from pymalloc."""
    env = os.environ if environ is None else environ
    python_malloc = env.get("PYTHONMALLOC", "")
    pymalloc = not python_malloc.startswith(("malloc", "mimalloc"))
    python = "pymalloc" if pymalloc else f"{python_malloc.removesuffix('_debug')} (PYTHONMALLOC={python_malloc})"
    other = _allocator_in_front(env.get("LD_PRELOAD", ""), maps)
    if other is not None:
        return Allocator(other, python, False, pymalloc)
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        libc = ""
    if libc.startswith("glibc"):
        return Allocator(libc, python, True, pymalloc)
    return Allocator("musl or another libc", python, False, pymalloc)


def _allocator_in_front(preload: str, maps: Path) -> str | None:
    for name in OTHER_ALLOCATORS:
        if name in preload:
            return f"{name} (LD_PRELOAD)"
    try:
        mapped = maps.read_text()
    except OSError:
        return None
    for name in OTHER_ALLOCATORS:
        if f"lib{name}" in mapped:
            return f"{name} (linked)"
    return None
