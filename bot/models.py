"""Polly's own bot's tables (polls and votes): the host's data, not the memory layer's.

On their own `MetaData`: the memory extension creates only its `polly_*` tables and never these."""

from __future__ import annotations

import enum

from sqlalchemy import JSON, BigInteger, Column, DateTime, Enum, ForeignKey, Integer, MetaData, String, Table, Text

from polly.models import utcnow

metadata = MetaData()


class PollStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CLOSED = "closed"


polls = Table(
    "polls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("question", Text, nullable=False),
    Column("options", JSON, default=list, nullable=False),
    Column("server_id", BigInteger, index=True, nullable=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("creator_id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("open_time", DateTime(timezone=True), nullable=True),
    Column("close_time", DateTime(timezone=True), nullable=True),
    Column(
        "status",
        Enum(PollStatus, values_callable=lambda e: [m.value for m in e], native_enum=False),
        default=PollStatus.SCHEDULED,
        index=True,
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), default=utcnow, nullable=False),
)

votes = Table(
    "votes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), index=True, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("option_index", Integer, nullable=False),
    Column("voted_at", DateTime(timezone=True), default=utcnow, nullable=False),
)
