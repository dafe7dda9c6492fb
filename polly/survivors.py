"""Cogs and extension modules that outlived their unload: weak references to everything the bot
has loaded, judged after a full garbage collection.

A cog unloaded a moment ago may still be alive only because nothing has collected its reference
cycles yet; once the collector has run a full (generation 2) collection since the unload, an
instance still alive is held by something live: a **survivor**. Polly never forces that
collection (a full collection of a large heap blocks the bot): it waits for the next one (the
automatic cleanup runs one, so does `/mem cleanup`).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Collection, Iterable
from datetime import datetime

from polly.records import record


def full_collections() -> int:
    """Generation-2 collections so far (a counter the collector keeps: O(1))."""
    return int(gc.get_stats()[2]["collections"])


@record
class Seen:
    """One loaded object, weakly: while loaded, `unloaded_at` is None."""

    ref: weakref.ref[object]
    name: str
    kind: str  # "cog" or "extension"
    unloaded_at: datetime | None = None
    collections_at_unload: int = 0


@record
class Found:
    """Survivors of one name now (strong references for the caller's moment: drop them soon)."""

    name: str
    kind: str
    unloaded_at: datetime
    objects: tuple[object, ...]


class SurvivorWatch:
    """Sees what is loaded at each census (`observe`), remembers it weakly, names what survives."""

    def __init__(self) -> None:
        self._seen: dict[int, Seen] = {}
        self._walk_started = 0  # full collections when the last heap walk began
        self.names: set[str] = set()  # every cog and extension name seen loaded in this bot

    def observe(self, loaded: Iterable[tuple[str, str, object]], now: datetime) -> None:
        """`loaded`: (kind, name, object) for each cog and extension module loaded now."""
        present = set()
        for kind, name, obj in loaded:
            self.names.add(name)
            key = id(obj)
            present.add(key)
            entry = self._seen.get(key)
            if entry is not None and entry.ref() is obj:
                if entry.unloaded_at is not None:  # loaded again (the same object: not a survivor)
                    self._seen[key] = Seen(entry.ref, name, kind)
                continue
            try:
                ref = weakref.ref(obj, self._forget(key))
            except TypeError:  # an object without weak references (a cog with __slots__): not watched
                continue
            self._seen[key] = Seen(ref, name, kind)
        gcs = None
        for key, entry in list(self._seen.items()):
            if key not in present and entry.unloaded_at is None:
                gcs = full_collections() if gcs is None else gcs
                self._seen[key] = Seen(entry.ref, entry.name, entry.kind, now, gcs)

    def adopt(self, kind: str, name: str, obj: object, now: datetime) -> None:
        """An unloaded object found by a heap walk that no census saw loaded (a reload between two
        ticks): judged from now on, as if unloaded now."""
        key = id(obj)
        if key in self._seen:
            return
        try:
            ref = weakref.ref(obj, self._forget(key))
        except TypeError:
            return
        self._seen[key] = Seen(ref, name, kind, now, full_collections())

    def judge_from_now(self) -> None:
        """Unloaded objects not judged yet are judged after the next full collection from now
        (one during a heap walk proves nothing: the walk's list held everything)."""
        gcs = full_collections()
        for key, entry in list(self._seen.items()):
            if entry.unloaded_at is not None and entry.collections_at_unload >= self._walk_started:
                self._seen[key] = Seen(entry.ref, entry.name, entry.kind, entry.unloaded_at, gcs)

    def walk_starts(self) -> None:
        self._walk_started = full_collections()

    def _forget(self, key: int) -> Callable[[weakref.ref[object]], None]:
        seen = self._seen

        def forget(ref: weakref.ref[object]) -> None:
            entry = seen.get(key)
            if entry is not None and entry.ref is ref:
                del seen[key]

        return forget

    def survivors(self, held: Collection[str] = (), *, pending: bool = False) -> list[Found]:
        """Unloaded and alive, and either a full collection has run since or a holder of that name
        was found (`held`): by name, most instances first. `pending`: every unloaded one alive."""
        gcs = full_collections()
        by_name: dict[tuple[str, str], list[object]] = {}
        since: dict[tuple[str, str], datetime] = {}
        for entry in list(self._seen.values()):
            if entry.unloaded_at is None:
                continue
            if not pending and gcs <= entry.collections_at_unload and entry.name not in held:
                continue
            obj = entry.ref()
            if obj is None:
                continue
            key = (entry.kind, entry.name)
            by_name.setdefault(key, []).append(obj)
            since[key] = min(since.get(key, entry.unloaded_at), entry.unloaded_at)
        found = [Found(name, kind, since[(kind, name)], tuple(objs)) for (kind, name), objs in by_name.items()]
        return sorted(found, key=lambda f: (-len(f.objects), f.name))

    def __len__(self) -> int:
        return len(self._seen)
