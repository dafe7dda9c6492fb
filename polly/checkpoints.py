"""Checkpoints: stored samples under a label, their store (database or memory), and comparisons."""

from __future__ import annotations

import unicodedata
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from polly.allocations import AllocationGrowth
from polly.bot_census import census_growth
from polly.enhanced_database import Database
from polly.heap_types import TypeGrowth, type_growth
from polly.models import memory_checkpoints as table
from polly.records import record
from polly.samples import MemorySample

if TYPE_CHECKING:
    from polly.rss_breakdown import PartChange

LABEL_MAX_LENGTH = 100


class CheckpointError(ValueError):
    """A checkpoint request that cannot be honoured; the message is one sentence for the operator."""


@record
class Checkpoint:
    label: str
    created_at: datetime
    automatic: bool
    sample: MemorySample
    allocations: dict[str, list[int]] | None = None


@record
class StructureChange:
    name: str
    before: int | None
    after: int | None

    @property
    def change(self) -> int:
        return (self.after or 0) - (self.before or 0)


@record
class CheckpointComparison:
    before: Checkpoint
    after: Checkpoint
    rss_change: int
    rss_change_percent: float
    uss_change: int | None
    uss_change_percent: float | None
    structures: tuple[StructureChange, ...]
    gc_objects_change: int | None
    pool_checked_out_change: int | None
    top_allocations: tuple[AllocationGrowth, ...] = ()
    caches: tuple[StructureChange, ...] = ()  # discord.py's caches, where both samples counted them
    types: tuple[TypeGrowth, ...] = ()  # the types that grew most (checkpoints count them)
    bot: tuple[TypeGrowth, ...] = ()  # the bot's tasks, views, sessions, survivors that grew

    @property
    def elapsed_s(self) -> float:
        return (self.after.created_at - self.before.created_at).total_seconds()


@record
class AutomaticGrowth:
    """Between the two newest automatic checkpoints: RSS growth, growing types, the part that grew."""

    percent: float | None
    types: tuple[TypeGrowth, ...]
    part: PartChange | None = None


def automatic_growth(newest_two: list[Checkpoint], since: datetime | None = None) -> AutomaticGrowth:
    """RSS growth in percent between two automatic checkpoints (newest first), the types that grew
    most and the part of RSS that grew; nothing when the older one was taken before `since` (the
    end of the warm-up after a start: growth across a start or a warm-up is no leak)."""
    if len(newest_two) < 2 or (since is not None and newest_two[1].created_at < since):
        return AutomaticGrowth(None, ())
    newer, older = newest_two[0].sample, newest_two[1].sample
    part = None
    if older.breakdown is not None and newer.breakdown is not None:
        from polly.rss_breakdown import grown_part  # loaded with the first breakdown

        part = grown_part(older.breakdown, newer.breakdown)
    return AutomaticGrowth(
        percent_change(older.rss, newer.rss), type_growth(older.type_counts, newer.type_counts), part
    )


def percent_change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return 100.0 * (after - before) / before


def compare_checkpoints(before: Checkpoint, after: Checkpoint, top: int = 10) -> CheckpointComparison:
    a, b = before.sample, after.sample
    structures = _changes({s.name: s.size for s in a.structures}, {s.name: s.size for s in b.structures})
    caches: tuple[StructureChange, ...] = ()
    if a.discord_caches is not None and b.discord_caches is not None:
        caches = _changes(dict(a.discord_caches.counts), dict(b.discord_caches.counts))
    uss_change = None if a.uss is None or b.uss is None else b.uss - a.uss
    gc_change = None if a.gc_objects is None or b.gc_objects is None else b.gc_objects - a.gc_objects
    pool_change = None
    if a.pool is not None and b.pool is not None:
        pool_change = b.pool.checked_out - a.pool.checked_out
    allocations: tuple[AllocationGrowth, ...] = ()
    if before.allocations is not None and after.allocations is not None:
        growth = []
        for where, (size, count) in after.allocations.items():
            old_size, old_count = before.allocations.get(where, (0, 0))
            if size - old_size > 0:
                growth.append(AllocationGrowth(where, size - old_size, count - old_count))
        allocations = tuple(sorted(growth, key=lambda g: -g.size_change)[:top])
    return CheckpointComparison(
        before=before,
        after=after,
        rss_change=b.rss - a.rss,
        rss_change_percent=percent_change(a.rss, b.rss) or 0.0,
        uss_change=uss_change,
        uss_change_percent=percent_change(a.uss, b.uss),
        structures=structures,
        gc_objects_change=gc_change,
        pool_checked_out_change=pool_change,
        top_allocations=allocations,
        caches=caches,
        types=type_growth(a.type_counts, b.type_counts, top),
        bot=census_growth(a.bot, b.bot, top),
    )


def _changes(before: dict[str, int], after: dict[str, int]) -> tuple[StructureChange, ...]:
    names = list(dict.fromkeys([*before, *after]))
    return tuple(StructureChange(n, before.get(n), after.get(n)) for n in names)


# Characters that render as nothing though Unicode does not class them as spaces or format characters.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in `text` (no database, log or Discord can take one), else None."""
    return next((c for c in text if "\ud800" <= c <= "\udfff"), None)


def checked_label(label: str) -> str:
    """The label to store, stripped; a CheckpointError says what is allowed.

    The same rules on every database: control characters (NUL among them, which PostgreSQL cannot
    store in text) are refused, and so is a label with nothing visible in it (zero-width and other
    invisible characters only), which nobody could tell apart or type again."""
    label = label.strip()
    if not label or len(label) > LABEL_MAX_LENGTH:
        raise CheckpointError(f"A checkpoint label must be 1 to {LABEL_MAX_LENGTH} characters long.")
    surrogate = lone_surrogate(label)
    if surrogate is not None:
        raise CheckpointError(
            f"A checkpoint label cannot contain a lone surrogate (found U+{ord(surrogate):04X}, half of a "
            "character): use letters, digits, spaces and punctuation."
        )
    control = next((c for c in label if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise CheckpointError(
            f"A checkpoint label cannot contain control characters (found U+{ord(control):04X}): "
            "use letters, digits, spaces and punctuation."
        )
    if all(unicodedata.category(c) in INVISIBLE_CATEGORIES or c in BLANK_LOOKING for c in label):
        raise CheckpointError(
            "A checkpoint label needs at least one visible character (it had only invisible ones): "
            "use letters, digits or punctuation."
        )
    return label


INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Mn", "Me"})


@record
class CheckpointMark:
    at: datetime
    automatic: bool
    rss: int | None


class DuplicateLabelError(CheckpointError):
    """Another checkpoint already has this label (found when storing it, so also under a race)."""

    def __init__(self, label: str) -> None:
        super().__init__(f"A checkpoint named '{label}' already exists: choose another label.")
        self.label = label


# ---------------------------------------------------------------- stores


if TYPE_CHECKING:  # a Protocol class costs ~4 KiB at import; checkers are its only readers
    from typing import Protocol

    class CheckpointStore(Protocol):
        """Where checkpoints live; keeps the newest `keep` manual and `keep_automatic` automatic ones
        (separately: manual checkpoints never push out the automatic ones the growth rule compares)
        and lists newest first."""

        persistent: bool

        async def add(self, checkpoint: Checkpoint) -> int:
            """Store one checkpoint, trim to the retention; return how many are kept."""
            ...

        async def get(self, label: str) -> Checkpoint | None: ...

        async def exists(self, label: str) -> bool:
            """Whether a checkpoint has this label (without reading its sample)."""
            ...

        async def newest(self, *, automatic: bool | None = None, limit: int = 25) -> list[Checkpoint]: ...

        async def count(self) -> int: ...

        async def marks(self, since: datetime) -> list[CheckpointMark]:
            """When each checkpoint since `since` was taken, whether automatically, and its RSS (None
            for checkpoints stored before the column existed): the chart's markers, without samples."""
            ...


class MemoryCheckpointStore:
    """Checkpoints in this process only (no database): gone at exit."""

    persistent = False

    def __init__(self, keep: int, keep_automatic: int) -> None:
        self.keep = {False: keep, True: keep_automatic}
        self._items: OrderedDict[str, Checkpoint] = OrderedDict()

    async def add(self, checkpoint: Checkpoint) -> int:
        if checkpoint.label in self._items:
            raise DuplicateLabelError(checkpoint.label)
        self._items[checkpoint.label] = checkpoint
        same_kind = [c.label for c in self._items.values() if c.automatic == checkpoint.automatic]
        for label in same_kind[: max(0, len(same_kind) - self.keep[checkpoint.automatic])]:
            del self._items[label]
        return len(self._items)

    async def get(self, label: str) -> Checkpoint | None:
        return self._items.get(label)

    async def exists(self, label: str) -> bool:
        return label in self._items

    async def newest(self, *, automatic: bool | None = None, limit: int = 25) -> list[Checkpoint]:
        items = [c for c in reversed(self._items.values()) if automatic in (None, c.automatic)]
        return items[:limit]

    async def count(self) -> int:
        return len(self._items)

    async def marks(self, since: datetime) -> list[CheckpointMark]:
        return [
            CheckpointMark(c.created_at, c.automatic, c.sample.rss)
            for c in self._items.values()
            if c.created_at >= since
        ]


class DatabaseCheckpointStore:
    """Checkpoints in the `memory_checkpoints` table: they survive restarts."""

    persistent = True

    def __init__(self, db: Database, keep: int, keep_automatic: int) -> None:
        self.db = db
        self.keep = {False: keep, True: keep_automatic}

    async def add(self, checkpoint: Checkpoint) -> int:
        try:
            return await self._add(checkpoint)
        except IntegrityError:  # the label's unique constraint: another checkpoint took it meanwhile
            raise DuplicateLabelError(checkpoint.label) from None

    async def _add(self, checkpoint: Checkpoint) -> int:
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(table).values(
                    label=checkpoint.label,
                    created_at=checkpoint.created_at,
                    automatic=checkpoint.automatic,
                    sample=checkpoint.sample.to_dict(),
                    allocations=checkpoint.allocations,
                    rss=checkpoint.sample.rss,
                )
            )
            kind = table.c.automatic == checkpoint.automatic
            newest = select(table.c.id).where(kind).order_by(table.c.id.desc()).limit(self.keep[checkpoint.automatic])
            await conn.execute(delete(table).where(kind, table.c.id.not_in(newest)))
            return await conn.scalar(select(func.count(table.c.id))) or 0

    async def get(self, label: str) -> Checkpoint | None:
        async with self.db.transaction() as conn:
            row = (await conn.execute(select(table).where(table.c.label == label))).first()
            return _from_row(row) if row is not None else None

    async def exists(self, label: str) -> bool:
        async with self.db.transaction() as conn:
            return await conn.scalar(select(table.c.id).where(table.c.label == label)) is not None

    async def newest(self, *, automatic: bool | None = None, limit: int = 25) -> list[Checkpoint]:
        async with self.db.transaction() as conn:
            query = select(table).order_by(table.c.id.desc()).limit(limit)
            if automatic is not None:
                query = query.where(table.c.automatic == automatic)
            return [_from_row(row) for row in await conn.execute(query)]

    async def count(self) -> int:
        async with self.db.transaction() as conn:
            return await conn.scalar(select(func.count(table.c.id))) or 0

    async def marks(self, since: datetime) -> list[CheckpointMark]:
        async with self.db.transaction() as conn:
            query = select(table.c.created_at, table.c.automatic, table.c.rss).where(table.c.created_at >= since)
            return [CheckpointMark(_aware(r.created_at), r.automatic, r.rss) for r in await conn.execute(query)]


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _from_row(row: Row) -> Checkpoint:
    return Checkpoint(
        row.label, _aware(row.created_at), row.automatic, MemorySample.from_dict(row.sample), row.allocations
    )
