"""The plan's import path for the memory utilities; each job lives in its own module.

- polly.bounded     bounded dict/set, cleanup_global_dict, reset_counter_dict, entry timestamps
- polly.registry    the registry of tracked global structures (`registry`)
- polly.gc_tools    garbage collection, heap trimming, cleanup of every tracked structure
- polly.decorators  memory_cleanup_decorator, memory_profile
"""

from polly.bounded import (
    DEFAULT_TIMESTAMP_KEY,
    BoundedDict,
    BoundedSet,
    cleanup_global_dict,
    entry_timestamp,
    reset_counter_dict,
    to_epoch,
)
from polly.decorators import memory_cleanup_decorator
from polly.gc_tools import (
    CleanupReport,
    GCReport,
    cleanup_background_tasks_memory,
    force_garbage_collection,
)
from polly.process_stats import process_rss
from polly.registry import CleanupRow, StructureRegistry, StructureStat, Tracked, registry

__all__ = [
    "DEFAULT_TIMESTAMP_KEY",
    "BoundedDict",
    "BoundedSet",
    "CleanupReport",
    "CleanupRow",
    "GCReport",
    "StructureRegistry",
    "StructureStat",
    "Tracked",
    "cleanup_background_tasks_memory",
    "cleanup_global_dict",
    "entry_timestamp",
    "force_garbage_collection",
    "memory_cleanup_decorator",
    "process_rss",
    "registry",
    "reset_counter_dict",
    "to_epoch",
]
