"""Where Polly's footprint is: the started bot's RSS over the bare bot's, split into what each of
Polly's modules costs to import (its code objects, measured by unmarshalling its bytecode, and what
running its top level keeps: classes, functions, tables, app commands), what the running bot keeps
after its start (engine, schema work, the first checkpoint), and what no Python allocation explains
(the allocators' own overhead and native memory).

    python -m benchmarks.footprint_attribution --runs 3      -> the table, min/median/max over runs
    python -m benchmarks.footprint_attribution traced KIND   -> JSON: one started bot, tracemalloc on
    python -m benchmarks.footprint_attribution code MODULE.. -> JSON: each module's code objects

A diagnostic for deciding what to cut, not a budgeted figure. RSS comes from the footprint
benchmark's own children (`python -m benchmarks.footprint started KIND`); the Python allocations
from the same bots started with tracemalloc on (whose own tables would inflate RSS), which hide
tracemalloc from Polly (it would otherwise take its allocation snapshots at every checkpoint) and
count every module's import exclusive of the modules it imports in turn. Code objects are measured
by unmarshalling each module's bytecode in a clean interpreter that has loaded what the bare bot
loads, in the order the bot imports them, so a name is counted once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter

KINDS = ("bare", "embedded", "polly")
TOP_MODULES = 25


def traced(kind: str) -> dict[str, object]:
    import _tracemalloc
    import tracemalloc

    tracemalloc.start(1)
    # Polly reads _tracemalloc.is_tracing when its modules load; told False, it takes no snapshots.
    _tracemalloc.is_tracing = lambda: False  # type: ignore[assignment]
    import importlib._bootstrap_external as bootstrap

    exclusive: Counter[str] = Counter()
    stack: list[list[object]] = []
    exec_module = bootstrap._LoaderBasics.exec_module

    def timed_exec_module(loader: object, module: object) -> None:
        before = tracemalloc.get_traced_memory()[0]
        frame: list[object] = [module.__name__, 0]  # type: ignore[attr-defined]
        stack.append(frame)
        try:
            exec_module(loader, module)
        finally:
            stack.pop()
            inclusive = tracemalloc.get_traced_memory()[0] - before
            exclusive[str(frame[0])] += inclusive - int(frame[1])  # type: ignore[call-overload]
            if stack:
                stack[-1][1] = int(stack[-1][1]) + inclusive  # type: ignore[call-overload]

    bootstrap._LoaderBasics.exec_module = timed_exec_module  # type: ignore[method-assign]

    from benchmarks import footprint

    measured: dict[str, object] = {}
    read_rss = footprint.rss_mib

    def measure() -> float:
        rss = read_rss()
        measured.update(traced=tracemalloc.get_traced_memory()[0], modules=dict(exclusive))
        return rss

    footprint.rss_mib = measure
    footprint.started(kind)
    return measured


def code(names: list[str]) -> dict[str, int]:
    """What each module's code objects take once loaded: its bytecode file unmarshalled (kept, so
    names and constants shared with the modules before it are counted once)."""
    import importlib
    import importlib.util
    import marshal
    import tracemalloc

    from benchmarks.footprint import BARE_IMPORTS

    for bare in BARE_IMPORTS:
        importlib.import_module(bare)
    tracemalloc.start(1)
    kept, sizes = [], {}
    for name in names:
        origin = importlib.util.find_spec(name).origin  # type: ignore[union-attr]
        if origin is None or not origin.endswith(".py"):
            continue
        with open(importlib.util.cache_from_source(origin), "rb") as cached:
            data = cached.read()[16:]  # past the header
        before = tracemalloc.get_traced_memory()[0]
        kept.append(marshal.loads(data))
        sizes[name] = tracemalloc.get_traced_memory()[0] - before
    return sizes


def run(runs: int) -> None:
    from benchmarks._harness import run_child
    from benchmarks.bench_memory import with_bytecode

    def measured(*args: str) -> dict:
        return run_child(*args, timeout=300, env=with_bytecode())

    results: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for kind in KINDS:  # writes the bytecode the measured processes load (compiling leaves garbage)
        measured("benchmarks.footprint", "started", kind)
        measured("benchmarks.footprint_attribution", "traced", kind)
    for _ in range(runs):
        for kind in KINDS:
            result = measured("benchmarks.footprint_attribution", "traced", kind)
            result["rss_mib"] = measured("benchmarks.footprint", "started", kind)["rss_mib"]
            results[kind].append(result)
    bare_rss = statistics.median(r["rss_mib"] for r in results["bare"])
    bare_traced = statistics.median(r["traced"] for r in results["bare"])
    bare_modules = set().union(*(r["modules"] for r in results["bare"]))
    ours = [name for name in results["polly"][0]["modules"] if name not in bare_modules]
    code_sizes = measured("benchmarks.footprint_attribution", "code", *ours)
    mib = 1024 * 1024

    def spread(values: list[float]) -> str:
        return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"

    print(f"MiB over the bare bot, min / median / max of {runs} fresh processes each (allocations: twins traced)")
    for kind in ("embedded", "polly"):
        rows: dict[str, list[float]] = {}
        per_module: dict[str, list[tuple[float, float]]] = {}
        for r in results[kind]:
            added = {name: size for name, size in r["modules"].items() if name not in bare_modules}
            imported = sum(added.values()) / mib
            code = sum(code_sizes.get(name, 0) for name in added) / mib
            traced = (r["traced"] - bare_traced) / mib
            for label, value in (
                ("RSS (the footprint benchmark's children)", r["rss_mib"] - bare_rss),
                ("  Python allocations (traced)", traced),
                ("    imports of Polly's modules", imported),
                ("      their code objects", code),
                ("      running their top level", imported - code),
                ("    kept by the running bot", traced - imported),
                ("  allocator overhead and native memory", r["rss_mib"] - bare_rss - traced),
                ("modules added", float(len(added))),
            ):
                rows.setdefault(label, []).append(value)
            for name, size in added.items():
                per_module.setdefault(name, []).append((code_sizes.get(name, 0) / 1024, size / 1024))
        print(f"\n{kind}:")
        for label, values in rows.items():
            print(f"  {label:42s} {spread(values)}")
        print(f"  top {TOP_MODULES} modules by import cost (KiB, medians): import = code + top level")
        ranked = sorted(per_module.items(), key=lambda item: -statistics.median(s for _, s in item[1]))
        for name, sizes in ranked[:TOP_MODULES]:
            code_kib = statistics.median(c for c, _ in sizes)
            size = statistics.median(s for _, s in sizes)
            print(f"    {name:32s} {size:7.1f} = {code_kib:6.1f} + {size - code_kib:6.1f}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["traced"]:
        print(json.dumps(traced(argv[1])))
        return
    if argv[:1] == ["code"]:
        print(json.dumps(code(argv[1:])))
        return
    parser = argparse.ArgumentParser(prog="python -m benchmarks.footprint_attribution")
    parser.add_argument("--runs", type=int, default=3)
    run(parser.parse_args(argv).runs)


if __name__ == "__main__":
    main(sys.argv[1:])
