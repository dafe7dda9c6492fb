"""Polly's own bot's tables (polls and votes): the host's data, not the memory layer's.

As the bot reads and writes them: lightweight `table()`/`column()` clauses with their types (see
`polly.models` for why: a full `Table` keeps an event dispatcher and DDL details for every column,
~0.1 MiB for these two). Their DDL is `poll_tables()`, built when the bot creates missing tables at
start and dropped after; the memory extension creates only its `polly_*` tables and never these.
Columns have no defaults: an insert names its values."""

from __future__ import annotations

import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    column,
    table,
)


class PollStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CLOSED = "closed"


polls = table(
    "polls",
    column("id", Integer),
    column("name", String(255)),
    column("question", Text),
    column("options", JSON),
    column("server_id", BigInteger),
    column("channel_id", BigInteger),
    column("creator_id", BigInteger),
    column("message_id", BigInteger),
    column("open_time", DateTime(timezone=True)),
    column("close_time", DateTime(timezone=True)),
    column("status", Enum(PollStatus, values_callable=lambda e: [m.value for m in e], native_enum=False)),
    column("created_at", DateTime(timezone=True)),
)

votes = table(
    "votes",
    column("id", Integer),
    column("poll_id", Integer),
    column("user_id", BigInteger),
    column("option_index", Integer),
    column("voted_at", DateTime(timezone=True)),
)


def poll_tables() -> MetaData:
    """The DDL of the polls and votes tables (the columns of `polls` and `votes`, with their keys)."""
    metadata = MetaData()
    Table(
        "polls",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(255), nullable=False),
        Column("question", Text, nullable=False),
        Column("options", JSON, nullable=False),
        Column("server_id", BigInteger, index=True, nullable=False),
        Column("channel_id", BigInteger, nullable=False),
        Column("creator_id", BigInteger, nullable=False),
        Column("message_id", BigInteger, nullable=True),
        Column("open_time", DateTime(timezone=True), nullable=True),
        Column("close_time", DateTime(timezone=True), nullable=True),
        # VARCHAR(9), as the Enum makes it (no native enum, no CHECK): an Enum here would keep this
        # whole MetaData alive after create_all (SQLAlchemy's schema-type events hold it).
        Column("status", String(max(len(s) for s in PollStatus)), index=True, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    Table(
        "votes",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), index=True, nullable=False),
        Column("user_id", BigInteger, nullable=False),
        Column("option_index", Integer, nullable=False),
        Column("voted_at", DateTime(timezone=True), nullable=False),
    )
    return metadata
