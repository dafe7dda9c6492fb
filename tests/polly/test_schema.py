"""The tables the running bot reads and writes (clauses: polly/models.py, polly/fleet_tables.py,
bot/models.py) and the DDL that creates them (polly/schema.py, bot.models.poll_tables) describe
the same columns, with the same types."""

from __future__ import annotations

import gc
import weakref

import pytest
from sqlalchemy import MetaData, create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import TableClause

from bot import models as bot_models
from polly import fleet_tables, models, schema


def described(table: TableClause) -> list[tuple[str, str, str]]:
    """Each column's name and its type as SQLite's and PostgreSQL's DDL write it."""
    return [
        (column.name, column.type.compile(dialect=sqlite.dialect()), column.type.compile(dialect=postgresql.dialect()))
        for column in table.columns
    ]


CLAUSES = [
    models.memory_checkpoints,
    models.memory_history,
    models.alert_events,
    models.runtime_settings,
    fleet_tables.fleet_instances,
    fleet_tables.fleet_leader,
    fleet_tables.fleet_cleanup_reports,
]


@pytest.mark.parametrize("clause", CLAUSES, ids=lambda t: t.name)
def test_each_of_polly_s_tables_is_the_one_its_ddl_creates(clause):
    ddl = schema.polly_tables(fleet=True).tables[clause.name]
    assert described(clause) == described(ddl)


@pytest.mark.parametrize("clause", [bot_models.polls, bot_models.votes], ids=lambda t: t.name)
def test_polly_s_bot_s_tables_are_the_ones_their_ddl_creates(clause):
    assert described(clause) == described(bot_models.poll_tables().tables[clause.name])


def test_the_names_are_known_without_building_the_tables():
    for fleet in (False, True):
        assert list(schema.table_names(fleet=fleet)) == list(schema.polly_tables(fleet=fleet).tables)
    assert {t.name for t in CLAUSES} == set(schema.table_names(fleet=True))


def test_the_ddl_is_garbage_once_it_has_created_the_tables(tmp_path):
    """Built for one transaction and dropped: no schema-type event of SQLAlchemy's keeps it alive."""
    engine = create_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    built = [schema.polly_tables(fleet=True), bot_models.poll_tables()]
    alive = [weakref.ref(metadata) for metadata in built]
    with engine.begin() as conn:
        for metadata in built:
            metadata.create_all(conn)
    del built, metadata
    gc.collect()
    engine.dispose()
    assert [ref() for ref in alive] == [None, None]


def test_the_running_bot_holds_no_table_object():
    """Nothing module-level of Polly's tables is a full Table (whose per-column events and DDL the
    bot would keep for its whole life); the comparison above would pass on Tables too."""
    for clause in [*CLAUSES, bot_models.polls, bot_models.votes]:
        assert type(clause) is TableClause
    assert not any(isinstance(value, MetaData) for value in vars(models).values())
