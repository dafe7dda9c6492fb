"""`/mem inspect type:<name>`: how many objects of a type live, what they are estimated to weigh,
and who holds one, within a time budget. Names and numbers only: never contents or repr.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from polly.heap_refs import RefChain, find_chain
from polly.heap_sizes import deep_size
from polly.heap_types import UnknownTypeError, count_types_in_pieces, instances_off_loop, type_name
from polly.records import record

INSPECT_BUDGET_S = 3.0
SIZE_SAMPLE = 50
CHAIN_ATTEMPTS = 3  # instances tried when one is reachable from no root (held only by a frame)
# Immutable builtins the garbage collector does not track: gc.get_objects() cannot count them.
UNTRACKED_BUILTINS = {"str", "int", "float", "bytes", "bool", "complex", "NoneType", "range"}


@record
class Inspection:
    type_name: str
    count: int
    sampled: int  # instances whose size was measured
    mean_bytes: float | None
    chain: RefChain | None
    elapsed_s: float
    budget_s: float

    @property
    def estimated_bytes(self) -> int | None:
        return None if self.mean_bytes is None else round(self.mean_bytes * self.count)

    @property
    def complete(self) -> bool:
        return self.sampled > 0 and self.chain is not None and not self.chain.timed_out


def _resolve(name: str, counts: Mapping[type, int]) -> type:
    exact = [kind for kind in counts if type_name(kind) == name]
    if not exact:
        exact = [kind for kind in counts if kind.__name__ == name]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        names = ", ".join(sorted(type_name(kind) for kind in exact)[:5])
        raise UnknownTypeError(f"Several types are named '{name}' ({names}): give the full name.")
    if name in UNTRACKED_BUILTINS:
        raise UnknownTypeError(
            f"'{name}' objects are not tracked by the garbage collector, so they cannot be counted: "
            "inspect the type that holds them."
        )
    import difflib  # only for an unknown name

    by_short: dict[str, list[str]] = {}
    for kind in counts:
        by_short.setdefault(kind.__name__, []).append(type_name(kind))
    known = [full for fulls in by_short.values() for full in fulls]
    similar = difflib.get_close_matches(name, [*by_short, *known], n=5, cutoff=0.6)
    close = list(dict.fromkeys(full for match in similar for full in by_short.get(match, [match])))[:5]
    close += [k for k in known if name.lower() in k.lower() and k not in close][: 5 - len(close)]
    hint = f" Close matches: {', '.join(close)}." if close else " Pick one from the suggestions."
    raise UnknownTypeError(f"No live object has the type '{name}'.{hint}")


async def inspect_type(
    name: str,
    *,
    named_roots: Mapping[str, object],
    structures: Iterable[tuple[str, Any]] = (),
    budget_s: float = INSPECT_BUDGET_S,
    rng: random.Random | None = None,
) -> Inspection:
    """Count the live instances of `name`, estimate their size from a sample and find who holds
    one, giving up on what does not fit `budget_s` (the answer says so)."""
    started = time.perf_counter()
    deadline = started + budget_s
    objects = gc.get_objects()  # one snapshot of the heap; counted in pieces, searched off the loop
    try:
        counts = await count_types_in_pieces(objects)
        kind = _resolve(name.strip(), counts)
        count = counts[kind]
        del counts
        instances = await instances_off_loop(objects, kind)
    finally:
        del objects
    sample = (rng or random.Random()).sample(instances, min(SIZE_SAMPLE, len(instances)))
    del instances
    sizes = []
    for obj in sample:
        if time.perf_counter() > deadline:
            break
        sizes.append(deep_size(obj))
    chain = None
    structures = list(structures)
    for obj in sample[:CHAIN_ATTEMPTS]:
        chain = await find_chain(
            obj, named_roots=named_roots, structures=structures, deadline=deadline, ignore=[sample]
        )
        if chain.found or chain.timed_out:
            break
    return Inspection(
        type_name=type_name(kind),
        count=count,
        sampled=len(sizes),
        mean_bytes=sum(sizes) / len(sizes) if sizes else None,
        chain=chain,
        elapsed_s=time.perf_counter() - started,
        budget_s=budget_s,
    )
