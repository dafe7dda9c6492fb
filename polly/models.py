"""ORM models: Polly's polls and votes, memory checkpoints, alert history, runtime settings."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class PollStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    CLOSED = "closed"


class Poll(Base):
    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    server_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel_id: Mapped[int] = mapped_column(BigInteger)
    creator_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    open_time: Mapped[datetime | None] = mapped_column(nullable=True)
    close_time: Mapped[datetime | None] = mapped_column(nullable=True)
    status: Mapped[PollStatus] = mapped_column(
        Enum(PollStatus, values_callable=lambda e: [m.value for m in e], native_enum=False),
        default=PollStatus.SCHEDULED,
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    votes: Mapped[list[Vote]] = relationship(back_populates="poll", cascade="all, delete-orphan")


class Vote(Base):
    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    option_index: Mapped[int] = mapped_column(Integer)
    voted_at: Mapped[datetime] = mapped_column(default=utcnow)

    poll: Mapped[Poll] = relationship(back_populates="votes")


class MemoryCheckpoint(Base):
    """A stored memory sample (and optional tracemalloc summary), kept newest-N."""

    __tablename__ = "memory_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    automatic: Mapped[bool] = mapped_column(default=False)
    sample: Mapped[dict[str, Any]] = mapped_column(JSON)
    allocations: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AlertEvent(Base):
    """One alert transition (fired, repeated, resolved), kept newest-N."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    delivered: Mapped[bool] = mapped_column(default=False, index=True)
    since: Mapped[datetime | None] = mapped_column(nullable=True)  # when the alert first fired


class RuntimeSetting(Base):
    """Settings changed at runtime by operators (e.g. the alert channel), overriding the env."""

    __tablename__ = "runtime_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
