"""Polly's schema, versioned: numbered steps that create and upgrade Polly's own tables (`polly_*`)
and nothing else, recorded in `polly_schema_version`.

Why not Alembic: importing what running migrations needs (alembic.migration, .operations,
.runtime.environment, .script; Alembic 1.20.1) added 6.43-6.50 MiB of RSS over three fresh processes
(105 modules, Mako among them), for what is here a list of functions and one version number; this
module adds ~0.02 MiB, and Polly's whole footprint budget is 3 MiB.

Each step runs once per database, in one transaction; on PostgreSQL under an advisory lock, so
processes starting together on an empty database do not race each other's DDL.

A host's tables are never touched: a table Polly finds under one of its old, unprefixed names
(`alert_events`, ...) is adopted (renamed to its `polly_` name) only when its columns are those of
Polly's table; anything else of that name is left alone and Polly creates its own beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Column, Integer, MetaData, Table, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection

from polly import schema

log = logging.getLogger(__name__)

# The key of the PostgreSQL advisory lock held while the schema is upgraded ("pollyS" in ASCII).
# Not the fleet leader's of earlier versions ("polly", polly.fleet.LEADER_LOCK): such a leader holds
# it for as long as it lives, and every process starting meanwhile would wait on it forever.
SCHEMA_LOCK_KEY = 0x706F6C6C7953

_version_metadata = MetaData()
schema_version = Table(
    "polly_schema_version",
    _version_metadata,
    Column("version", Integer, primary_key=True),
)

# Polly up to 0.1 named its tables without a prefix, in the same database as the poll bot's own.
LEGACY_NAMES = {
    "memory_checkpoints": "polly_memory_checkpoints",
    "memory_history": "polly_memory_history",
    "alert_events": "polly_alert_events",
    "runtime_settings": "polly_runtime_settings",
    "fleet_instances": "polly_fleet_instances",
    "fleet_cleanup_reports": "polly_fleet_cleanup_reports",
}


def _adopt_legacy_tables(conn: Connection, metadata: MetaData) -> list[str]:
    """Rename Polly's unprefixed tables of earlier versions, when they are recognisably Polly's;
    return the new names of those adopted."""
    inspector = sa_inspect(conn)
    present = set(inspector.get_table_names())
    adopted = []
    for old, new in LEGACY_NAMES.items():
        table = metadata.tables.get(new)
        if table is None or old not in present or new in present:
            continue
        columns = {column["name"] for column in inspector.get_columns(old)}
        required = {c.name for c in table.columns if not c.nullable}
        if not required <= columns <= set(table.columns.keys()):
            log.info("Leaving the table %s alone: its columns are not Polly's", old)
            continue
        conn.execute(text(f'ALTER TABLE "{old}" RENAME TO "{new}"'))
        log.info("Adopted Polly's table %s of an earlier version as %s", old, new)
        adopted.append(new)
    return adopted


def _add_missing_columns(conn: Connection, metadata: MetaData, names: list[str], only: set[str] | None = None) -> None:
    """Nullable columns later versions added (`only` those), on tables adopted from an earlier
    version or created by an earlier step (reflected only then: reflecting every table of a new
    database would cost the bot memory for nothing)."""
    inspector = sa_inspect(conn)
    for table in (metadata.tables[name] for name in names):
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable and (only is None or column.name in only):
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))
                log.info("Added column %s.%s", table.name, column.name)


def _v1_prefixed_tables(conn: Connection, metadata: MetaData) -> None:
    adopted = _adopt_legacy_tables(conn, metadata)
    metadata.create_all(conn, checkfirst=True)
    if adopted:
        _add_missing_columns(conn, metadata, adopted)


def _v2_alert_attempts(conn: Connection, metadata: MetaData) -> None:
    events = metadata.tables["polly_alert_events"]
    _add_missing_columns(conn, metadata, [events.name], only={"attempted_at"})


# (version, what it does, step): append only; a released step never changes. Each step gets the
# schema's DDL (`polly.schema`), built for this transaction only.
MIGRATIONS: tuple[tuple[int, str, Callable[[Connection, MetaData], None]], ...] = (
    (1, "polly_* tables, adopting the unprefixed ones of earlier versions", _v1_prefixed_tables),
    (2, "polly_alert_events.attempted_at: a post interrupted by a restart is known", _v2_alert_attempts),
)
LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version recorded in this database (0: none of Polly's tables yet)."""
    if not sa_inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(select(schema_version.c.version)).scalar() or 0


def lock_schema(conn: Connection) -> None:
    """On PostgreSQL, hold the schema lock until this transaction ends: two processes' CREATE TABLE
    of one missing table is not safe against itself ("relation already exists")."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def create_host_tables(host_metadata: MetaData) -> Callable[[Connection], None]:
    """The DDL creating a host's own missing tables, under the schema lock."""

    def create(conn: Connection) -> None:
        lock_schema(conn)
        host_metadata.create_all(conn, checkfirst=True)

    return create


def upgrade(conn: Connection) -> list[int]:
    """Run the steps this database has not had, in order, on this connection's transaction; return
    the versions applied. A table missing after the last step (the fleet's, on a database that
    became PostgreSQL's after its schema was made) is created too: not a schema change."""
    lock_schema(conn)
    _version_metadata.create_all(conn, checkfirst=True)
    version = current_version(conn)
    fleet = conn.dialect.name == "postgresql"
    if version >= LATEST_VERSION and set(schema.table_names(fleet=fleet)) <= set(sa_inspect(conn).get_table_names()):
        return []  # the usual start: nothing to do, and the DDL is not even built
    # Built here and dropped at the end: the running bot reads and writes through polly.models.
    metadata = schema.polly_tables(fleet=fleet)
    applied = []
    for number, description, step in MIGRATIONS:
        if number > version:
            log.info("Polly schema: applying version %d (%s)", number, description)
            step(conn, metadata)
            applied.append(number)
    if applied:
        conn.execute(schema_version.delete())
        conn.execute(schema_version.insert().values(version=applied[-1]))
    metadata.create_all(conn, checkfirst=True)
    return applied


def table_names() -> list[str]:
    """Every table Polly may create (all of them `polly_*`)."""
    return [schema_version.name, *schema.table_names(fleet=True)]
