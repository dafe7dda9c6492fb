"""Who holds an object: one chain of references from a module global (or a named root such as the
bot) down to it, rendered with type, attribute and key names only, never contents or repr.

Why not objgraph's `find_backref_chain`: it scans the whole heap once per object it expands and
has no time bound. Here each level of the search is one `gc.get_referrers()` call for the whole
frontier (one heap scan), the event loop runs between levels, and a deadline ends the search.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import types
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from polly.records import record

YIELD_S = 0.001
MAX_DEPTH = 12
SEQUENCES = (list, tuple, deque, set, frozenset)
KEY_MAX_LENGTH = 40


@record
class RefChain:
    """`parts` from the root to the object, e.g. ("bot", "_connection", "_messages (deque)", "Message")."""

    parts: tuple[str, ...]
    levels: int
    timed_out: bool

    @property
    def found(self) -> bool:
        return bool(self.parts)

    def text(self) -> str:
        return " → ".join(self.parts)


def safe_key(key: object) -> str:
    """A dict key as shown to operators: ints and identifier-like names; anything else only its type
    (a key can be user data)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if isinstance(key, str) and key.isidentifier() and len(key) <= KEY_MAX_LENGTH:
        return key
    return f"<{type(key).__name__} key>"


def short_type(obj: object) -> str:
    return type(obj).__name__


def _key_of(mapping: Mapping[Any, Any], value: object) -> str:
    for key, candidate in mapping.items():
        if candidate is value:
            return safe_key(key)
    return "?"


def _slot_of(holder: object, value: object) -> str:
    for kind in type(holder).__mro__:
        for name in getattr(kind, "__slots__", ()):
            if getattr(holder, name, None) is value:
                return safe_key(name)
    return "?"


def _is_attr_dict(holder: object, mapping: object) -> bool:
    return isinstance(mapping, dict) and getattr(holder, "__dict__", None) is mapping


class _Roots:
    """What a chain may start from: named objects (the bot), modules and their globals."""

    def __init__(self, named: Mapping[str, object]) -> None:
        self.names: dict[int, str] = {id(obj): name for name, obj in named.items()}
        for name, obj in named.items():
            if isinstance(getattr(obj, "__dict__", None), dict):
                self.names.setdefault(id(obj.__dict__), name)
        self.modules: set[int] = set()
        for module_name, module in list(sys.modules.items()):
            if module is not None and id(module) not in self.names:
                self.names[id(module)] = self.names[id(vars(module))] = module_name
                self.modules.update((id(module), id(vars(module))))

    def name(self, obj: object) -> str | None:
        return self.names.get(id(obj))

    def is_module(self, obj: object) -> bool:
        return id(obj) in self.modules


def render_chain(path: list[Any], root_name: str, *, module_root: bool = False) -> tuple[str, ...]:
    """Parts of a path [root, ..., target]: attribute and key names, containers with their type."""
    parts = [root_name]
    i = 1
    while i < len(path):
        parent, node = path[i - 1], path[i]
        if isinstance(node, dict) and (_is_attr_dict(parent, node) or isinstance(parent, types.ModuleType)):
            if i + 1 >= len(path):
                break
            label, node, i = _key_of(node, path[i + 1]), path[i + 1], i + 1
        elif isinstance(parent, dict) and i == 1 and root_name == parts[0]:
            label = _key_of(parent, node)  # a module's globals: the root is the module itself
        elif isinstance(parent, dict):
            label = f"[{_key_of(parent, node)}]"
        elif isinstance(parent, SEQUENCES):
            label = ""  # the container's part already names it
        elif isinstance(parent, types.MethodType) and parent.__self__ is node:
            label = f"{parent.__func__.__name__}.__self__"  # a bound method: who it is bound to
        elif isinstance(getattr(parent, "__dict__", None), dict) and _key_of(parent.__dict__, node) != "?":
            label = _key_of(parent.__dict__, node)  # 3.11+ instances refer to attribute values directly
        elif hasattr(type(parent), "__slots__"):
            label = _slot_of(parent, node)
        else:
            label = f"<{short_type(parent)} reference>"
        last = i == len(path) - 1
        if last:
            if label:
                parts.append(label)
            parts.append(short_type(node))
        elif isinstance(node, (*SEQUENCES, dict)):
            parts.append(f"{label} ({short_type(node)})".strip())
        elif label:
            parts.append(label)
        i += 1
    # a module and its global read better joined, as Python writes them: "polly.offline.demo_leak.leaked (list)"
    if module_root and len(parts) > 2:
        parts[0:2] = [f"{parts[0]}.{parts[1]}"]
    return tuple(parts)


def _in_tracked_structure(target: object, structures: Iterable[tuple[str, Any]]) -> str | None:
    """The tracked structure holding `target` directly: their C containers are invisible to the GC."""
    for name, container in structures:
        values = container.values() if isinstance(container, Mapping) else container
        if any(value is target for value in values):
            return name
    return None


async def find_chain(
    target: object,
    *,
    named_roots: Mapping[str, object],
    structures: Iterable[tuple[str, Any]] = (),
    deadline: float,
    ignore: Iterable[object] = (),
    max_depth: int = MAX_DEPTH,
) -> RefChain:
    """Search upwards from `target` for a root, one heap scan per level, until `deadline`
    (time.perf_counter()). `ignore` are the caller's own references to the target."""
    holder = _in_tracked_structure(target, structures)
    if holder is not None:
        return RefChain((f"tracked structure {holder}", short_type(target)), 0, False)
    roots = _Roots(named_roots)
    skip = {id(obj) for obj in ignore}
    via: dict[int, Any] = {}  # id(holder) -> what it holds on the way to the target
    frontier: list[Any] = [target]
    seen = {id(target)}
    for level in range(1, max_depth + 1):
        # One heap scan per level, each one block: before it, a real (1 ms) sleep lets the bot's due
        # timers and I/O run; sleep(0) would let the next scan start before them.
        await asyncio.sleep(YIELD_S)
        if time.perf_counter() > deadline:
            return RefChain((), level - 1, True)
        skip.add(id(frontier))
        wanted = {id(obj) for obj in frontier}
        found: list[Any] = []
        for holder_obj in gc.get_referrers(*frontier):
            hid = id(holder_obj)
            if hid in seen or hid in skip or isinstance(holder_obj, types.FrameType) or holder_obj is via:
                continue
            if (
                isinstance(holder_obj, tuple)
                and len(holder_obj) == len(frontier)
                and set(map(id, holder_obj)) == wanted
            ):
                continue  # the argument tuple of the get_referrers call itself
            child = next((c for c in gc.get_referents(holder_obj) if id(c) in wanted), None)
            if child is None:
                continue
            seen.add(hid)
            via[hid] = child
            name = roots.name(holder_obj)
            if name is not None:
                parts = render_chain(_path(holder_obj, via, target), name, module_root=roots.is_module(holder_obj))
                return RefChain(parts, level, False)
            found.append(holder_obj)
        if not found:
            return RefChain((), level, False)
        frontier = found
    return RefChain((), max_depth, False)


def _path(root: object, via: Mapping[int, Any], target: object) -> list[Any]:
    path = [root]
    while path[-1] is not target:
        path.append(via[id(path[-1])])
    return path
