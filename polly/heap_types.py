"""Object counts by type, and which types grew: what objgraph's `typestats` and `growth` do.

Why not objgraph: importing it adds 0.5 MiB of RSS to the running bot (measured after the bot's
own imports), and automatic checkpoints would load it in every bot within the first hour; the
count itself is one line here, `Counter(map(type, gc.get_objects()))`, which runs in C
(about 50 ms at 1,000,000 objects, measured in the benchmarks). Runs at checkpoints, never per tick.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Collection
from itertools import islice

from polly.off_loop import off_loop
from polly.records import record

TYPES_KEPT = 300
# Objects counted or searched in one C call (~5 ms): the longest a heap walk holds the event loop.
PIECE = 100_000


class UnknownTypeError(ValueError):
    """No live object has that type; the message offers close matches (see polly.heap_inspect)."""


# the most common types a checkpoint stores; growth below that rank is not seen


def type_name(kind: type) -> str:
    """`dict`, `list` for builtins; `discord.message.Message` for everything else."""
    module = getattr(kind, "__module__", None)
    qualname = getattr(kind, "__qualname__", kind.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def count_types() -> Counter[type]:
    """Live GC-tracked objects by type (one pass over the heap, in C)."""
    return Counter(map(type, gc.get_objects()))


async def count_types_in_pieces(objects: list[object] | None = None) -> Counter[type]:
    """`count_types()` that does not stall the bot: the heap's list is taken on the loop (the one
    unavoidable block), then counted in pieces of PIECE objects, each a few milliseconds in C,
    between which the event loop runs whatever is due.

    On the loop, not in the worker thread: the counts' dict, grown there, lived in that thread's
    glibc arena, whose top `malloc_trim` never returns (76 KiB stayed resident after the first
    checkpoint, read in the started bot's smaps), and the thread itself cost a stack."""
    objects = gc.get_objects() if objects is None else objects
    counts: Counter[type] = Counter()
    remaining = iter(objects)  # never a slice: each would copy PIECE pointers (0.8 MiB)
    for _ in range(0, len(objects), PIECE):
        counts.update(map(type, islice(remaining, PIECE)))
        await asyncio.sleep(0)
    return counts


async def instances_off_loop(objects: list[object], kind: type) -> list[object]:
    """The objects of exactly `kind` in `objects`, filtered in a worker thread."""
    return await off_loop(pick, objects, {kind})


def pick(objects: list[object], kinds: Collection[type]) -> list[object]:
    """The objects of exactly these types (run in the worker thread: pieces of PIECE objects, read
    through one iterator, never sliced)."""
    found: list[object] = []
    remaining = iter(objects)
    for _ in range(0, len(objects), PIECE):
        found += [obj for obj in islice(remaining, PIECE) if type(obj) in kinds]
    return found


def type_counts(counts: Counter[type] | None = None, top: int = TYPES_KEPT) -> dict[str, int]:
    """The `top` most common types by name, most common first."""
    counts = count_types() if counts is None else counts
    named: Counter[str] = Counter()
    for kind, n in counts.most_common(top):
        named[type_name(kind)] += n  # two classes can share a qualified name (reloaded modules)
    return dict(named.most_common())


@record
class TypeGrowth:
    name: str
    before: int
    after: int

    @property
    def change(self) -> int:
        return self.after - self.before

    def short(self) -> str:
        """`Message +600`: the class name without its module, and the change."""
        return f"{self.name.rsplit('.', 1)[-1]} {self.change:+,}"


def type_growth(before: dict[str, int] | None, after: dict[str, int] | None, top: int = 10) -> tuple[TypeGrowth, ...]:
    """The types whose count grew most from `before` to `after` (a type missing from `before`
    was below its top ranks: counted from 0, so its growth may be overstated)."""
    if not before or not after:
        return ()
    grown = [TypeGrowth(name, before.get(name, 0), n) for name, n in after.items() if n > before.get(name, 0)]
    grown.sort(key=lambda g: (-g.change, g.name))
    return tuple(grown[:top])
