"""The alert outbox without Discord: a fake sink, the real store on a SQLite file, and a failure at
every point between "stored" and "marked", restarts included. Exactly once, or said when not."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import timedelta

import pytest

from polly.alert_outbox import MAY_REPEAT_NOTE, NONCE_WINDOW, AlertOutbox, OutgoingAlert, SinkUnavailable
from polly.alert_store import AlertStore
from polly.alerts import AlertTransition, Rule, Transition
from polly.monitor_health import MonitorHealth
from polly.registry import StructureRegistry
from tests.clocks import START, FakeClock


class Refused(RuntimeError):
    pass


class FakeSink:
    """Records what it posted; fails on demand (before opening, or at the n-th post)."""

    def __init__(self, *, unavailable: bool = False, fail_open: bool = False, fail_at: int | None = None) -> None:
        self.unavailable = unavailable
        self.fail_open = fail_open
        self.fail_at = fail_at
        self.posts: list[OutgoingAlert] = []
        self.summaries: list[tuple[list[OutgoingAlert], int, str]] = []

    def __call__(self) -> FakeSink:  # the outbox makes its sink only when something waits
        return self

    async def open(self) -> None:
        if self.unavailable:
            raise SinkUnavailable("no alert channel")
        if self.fail_open:
            raise Refused("channel lookup: 503")

    async def post(self, alert: OutgoingAlert) -> None:
        if self.fail_at is not None and len(self.posts) == self.fail_at:
            raise Refused("send: 503")
        self.posts.append(alert)

    async def post_summary(self, alerts: Sequence[OutgoingAlert], dropped: int, nonce: str) -> None:
        self.summaries.append((list(alerts), dropped, nonce))

    def subjects(self) -> list[str]:
        return [a.transition.subject for a in self.posts] + [
            a.transition.subject for alerts, _, _ in self.summaries for a in alerts
        ]


class FlakyStore(AlertStore):
    """The real store, with one of its steps refusing while `refuse` names it."""

    refuse: set[str]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refuse = set()
        self.asked: collections.Counter[str] = collections.Counter()  # each step's calls

    async def record(self, *args, **kwargs):
        self._maybe_refuse("record")
        return await super().record(*args, **kwargs)

    async def undelivered(self, *args, **kwargs):
        self._maybe_refuse("undelivered")
        return await super().undelivered(*args, **kwargs)

    async def mark_attempted(self, *args, **kwargs):
        self._maybe_refuse("mark_attempted")
        return await super().mark_attempted(*args, **kwargs)

    async def mark_delivered(self, *args, **kwargs):
        self._maybe_refuse("mark_delivered")
        return await super().mark_delivered(*args, **kwargs)

    def _maybe_refuse(self, step: str) -> None:
        self.asked[step] += 1
        if step in self.refuse:
            raise Refused(f"database refused {step}")


def fired(subject: str, minute: int = 0) -> AlertTransition:
    at = START + timedelta(minutes=minute)
    return AlertTransition(Transition.FIRED, Rule.MEMORY, subject, 90.0, 80.0, "high", at, at)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(db):
    return FlakyStore(db, keep=100, instance="eu-1")


def outbox_over(store, clock) -> AlertOutbox:
    """An outbox as one process has it: a new one over the same store is a restart."""
    return AlertOutbox(store, StructureRegistry(), clock, MonitorHealth())


async def queue(outbox: AlertOutbox, *subjects: str) -> None:
    for minute, subject in enumerate(subjects):
        await outbox.add(fired(subject, minute))


async def test_alerts_go_out_oldest_first_once_and_are_marked(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a", "b", "c")
    sink = FakeSink()
    assert await outbox.deliver(sink) == 3
    assert sink.subjects() == ["a", "b", "c"]
    assert await store.count_undelivered() == 0 and outbox.health.undelivered == 0
    assert await outbox.deliver(FakeSink()) == 0
    assert len({a.nonce for a in sink.posts}) == 3 and all(len(a.nonce) <= 25 for a in sink.posts)
    assert not any(a.may_repeat for a in sink.posts)


async def test_past_ten_the_rest_go_as_one_summary_with_what_was_dropped(db, clock):
    store = FlakyStore(db, keep=15, instance="eu-1")
    outbox = outbox_over(store, clock)
    await queue(outbox, *[f"s{i:02d}" for i in range(20)])  # 5 dropped: the table keeps 15 waiting
    sink = FakeSink()
    assert await outbox.deliver(sink) == 15
    assert len(sink.posts) == 10 and len(sink.summaries) == 1
    rest, dropped, nonce = sink.summaries[0]
    assert [a.transition.subject for a in rest] == [f"s{i:02d}" for i in range(15, 20)] and dropped == 5
    assert nonce is not None and store.dropped_undelivered == 0
    assert await outbox.deliver(FakeSink()) == 0


async def test_an_alert_the_database_refused_waits_in_memory_and_goes_out_once(store, clock):
    outbox = outbox_over(store, clock)
    store.refuse = {"record"}
    await queue(outbox, "in-memory")
    assert len(outbox.memory) == 1 and outbox.health.errors == 1
    store.refuse = set()
    sink = FakeSink()
    assert await outbox.deliver(sink) == 1
    assert sink.subjects() == ["in-memory"] and sink.posts[0].nonce  # kept in memory: still one nonce
    assert len(outbox.memory) == 0 and await outbox.deliver(FakeSink()) == 0


async def test_a_flood_the_database_refuses_asks_it_once_and_waits_in_memory_in_order(store, clock):
    """A locked SQLite makes each store wait out its busy timeout (5 s): 15 alerts fired together
    used to take 75 s of one tick, past two check intervals. Once it refused one, the rest wait in
    memory without asking, and all go out, in order, once the database takes them again."""
    outbox = outbox_over(store, clock)
    store.refuse = {"record"}
    events = await outbox.add_all([fired(f"f{i:02d}", i) for i in range(15)])
    assert store.asked["record"] == 1 and outbox.health.errors == 1
    assert [e.event_id for e in events] == [None] * 15 and len(outbox.memory) == 15
    store.refuse = set()
    sink = FakeSink()
    assert await outbox.deliver(sink) == 15
    assert sink.subjects() == [f"f{i:02d}" for i in range(15)] and len(outbox.memory) == 0  # posts, summary
    assert await outbox.add_all([fired("next", 20)]) and store.asked["record"] == 2  # asked again


async def test_an_unreadable_queue_still_delivers_what_waits_in_memory(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "stored")
    store.refuse = {"record"}
    await outbox.add(fired("in-memory", 5))
    store.refuse = {"undelivered"}
    sink = FakeSink()
    assert await outbox.deliver(sink) == 1 and sink.subjects() == ["in-memory"]
    store.refuse = set()
    later = FakeSink()
    assert await outbox.deliver(later) == 1 and later.subjects() == ["stored"]


async def test_no_channel_keeps_everything_waiting_without_counting_an_error(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a", "b")
    assert await outbox.deliver(FakeSink(unavailable=True)) == 0
    assert outbox.health.undelivered == 2 and outbox.health.errors == 0
    assert await outbox.waiting() == 2


async def test_a_sink_that_cannot_open_counts_a_failure_and_loses_nothing(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a")
    assert await outbox.deliver(FakeSink(fail_open=True)) == 0
    assert outbox.health.errors == 1 and outbox.health.undelivered == 1
    sink = FakeSink()
    assert await outbox.deliver(sink) == 1 and sink.subjects() == ["a"]


async def test_when_the_attempt_cannot_be_recorded_nothing_is_posted(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a")
    store.refuse = {"mark_attempted"}
    refused = FakeSink()
    assert await outbox.deliver(refused) == 0
    assert refused.posts == [] and outbox.health.undelivered == 1
    store.refuse = set()
    sink = FakeSink()
    assert await outbox.deliver(sink) == 1 and not sink.posts[0].may_repeat


async def test_a_failed_post_is_retried_with_the_same_nonce_and_no_note(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a", "b", "c")
    failing = FakeSink(fail_at=1)  # "a" goes out, "b" fails
    assert await outbox.deliver(failing) == 1
    assert outbox.health.undelivered == 2 and outbox.health.errors == 1
    clock.advance(NONCE_WINDOW.total_seconds() * 3)  # a long outage: still this process's own attempt
    sink = FakeSink()
    assert await outbox.deliver(sink) == 2
    assert sink.subjects() == ["b", "c"] and not any(a.may_repeat for a in sink.posts)
    assert failing.subjects() + sink.subjects() == ["a", "b", "c"]


async def test_a_post_whose_mark_failed_is_never_posted_again_by_this_process(store, clock):
    outbox = outbox_over(store, clock)
    await queue(outbox, "a")
    store.refuse = {"mark_delivered"}
    first = FakeSink()
    assert await outbox.deliver(first) == 1
    again = FakeSink()
    assert await outbox.deliver(again) == 0 and again.posts == []
    assert await store.count_undelivered() == 1  # not marked yet
    store.refuse = set()
    assert await outbox.deliver(FakeSink()) == 0
    assert await store.count_undelivered() == 0  # the mark went through at the next delivery


async def test_a_restart_soon_after_a_failed_mark_posts_again_with_the_same_nonce(store, clock):
    """Within Discord's nonce window the repeat is dropped by Discord: same nonce, no note."""
    before = outbox_over(store, clock)
    await queue(before, "a")
    store.refuse = {"mark_delivered"}
    first = FakeSink()
    await before.deliver(first)
    store.refuse = set()
    clock.advance(30)
    after_restart = outbox_over(store, clock)
    sink = FakeSink()
    assert await after_restart.deliver(sink) == 1
    assert sink.posts[0].nonce == first.posts[0].nonce and not sink.posts[0].may_repeat
    assert await store.count_undelivered() == 0


async def test_a_restart_long_after_an_interrupted_post_says_it_may_repeat(store, clock, caplog):
    before = outbox_over(store, clock)
    await queue(before, "a", "b")
    store.refuse = {"mark_delivered"}
    await before.deliver(FakeSink())
    store.refuse = set()
    clock.advance(NONCE_WINDOW.total_seconds() + 60)
    sink = FakeSink()
    assert await outbox_over(store, clock).deliver(sink) == 2
    assert [a.note for a in sink.posts] == [MAY_REPEAT_NOTE, MAY_REPEAT_NOTE]
    assert "was being posted when the bot stopped" in caplog.text
    assert await outbox_over(store, clock).deliver(FakeSink()) == 0


async def test_a_restart_between_the_attempt_and_the_post_says_so_too(store, clock):
    """The process stopped after recording the attempt (the post may or may not have happened)."""
    before = outbox_over(store, clock)
    await queue(before, "a")
    event = (await store.undelivered())[0]
    await store.mark_attempted([event.id], clock())
    clock.advance(NONCE_WINDOW.total_seconds() * 2)
    sink = FakeSink()
    assert await outbox_over(store, clock).deliver(sink) == 1
    assert sink.posts[0].may_repeat


async def test_two_deliveries_at_once_post_each_alert_once(store, clock):
    import asyncio

    outbox = outbox_over(store, clock)
    await queue(outbox, *[f"s{i}" for i in range(12)])
    sinks = [FakeSink(), FakeSink()]
    results = await asyncio.gather(*(outbox.deliver(s) for s in sinks))
    assert sorted(results) == [0, 12]
    assert sorted(sinks[0].subjects() + sinks[1].subjects()) == sorted(f"s{i}" for i in range(12))


async def test_without_a_database_the_outbox_still_delivers_from_memory(clock):
    outbox = AlertOutbox(None, StructureRegistry(), clock, MonitorHealth())
    await outbox.add(fired("a"))
    sink = FakeSink()
    assert await outbox.deliver(sink) == 1 and await outbox.waiting() == 0


async def test_an_interrupted_post_keeps_its_note_through_failed_retries_after_the_restart(store, clock):
    """Discord's nonce window counts from the first post, not from the new process's own attempts."""
    before = outbox_over(store, clock)
    await queue(before, "a")
    store.refuse = {"mark_delivered"}
    await before.deliver(FakeSink())
    store.refuse = set()
    clock.advance(30)
    after_restart = outbox_over(store, clock)
    assert await after_restart.deliver(FakeSink(fail_at=0)) == 0  # within the window, but refused
    clock.advance(NONCE_WINDOW.total_seconds())
    sink = FakeSink()
    assert await after_restart.deliver(sink) == 1 and sink.posts[0].may_repeat


async def test_what_waited_in_memory_is_stored_once_the_database_is_back_and_survives_a_restart(store, clock):
    """The database refused the alert and Discord was down too: the next delivery, the database back,
    stores it, so a restart before Discord is back no longer loses it."""
    before = outbox_over(store, clock)
    store.refuse = {"record"}
    await queue(before, "both-down")
    assert await before.deliver(FakeSink(fail_open=True)) == 0 and len(before.memory) == 1
    store.refuse = set()
    assert await before.deliver(FakeSink(fail_open=True)) == 0
    assert len(before.memory) == 0 and await store.count_undelivered() == 1
    sink = FakeSink()
    assert await outbox_over(store, clock).deliver(sink) == 1 and sink.subjects() == ["both-down"]


async def test_closing_stores_what_waits_in_memory_or_says_it_is_lost(store, clock, caplog):
    outbox = outbox_over(store, clock)
    store.refuse = {"record"}
    await queue(outbox, "a")
    await outbox.close()
    assert "1 alert event(s) the database refused are lost with this process" in caplog.text
    again = outbox_over(store, clock)
    await queue(again, "b")
    store.refuse = set()
    await again.close()
    assert [e.subject for e in await store.undelivered()] == ["b"]


async def test_the_count_of_dropped_alerts_survives_a_restart_and_is_said_once(db, clock):
    """More waited than ALERT_HISTORY_SIZE, then a restart before Discord came back: the summary
    after the restart still says how many were dropped (it used to say 0)."""
    before = FlakyStore(db, keep=15, instance="eu-1")
    await queue(outbox_over(before, clock), *[f"s{i:02d}" for i in range(20)])
    after = FlakyStore(db, keep=15, instance="eu-1")
    assert await after.restore_dropped() == 5
    sink = FakeSink()
    assert await outbox_over(after, clock).deliver(sink) == 15
    assert sink.summaries[0][1] == 5
    again = FlakyStore(db, keep=15, instance="eu-1")
    assert await again.restore_dropped() == 0
