"""The time-boxed trace ends on the core's own timer: no cog, no Discord, whatever the reporter does."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from polly.allocation_trace import TraceSlot
from polly.allocations import TraceRunningError
from tests.clocks import FakeClock

SHORT = 0.002  # minutes: the event loop's timer fires after 0.12 s


@pytest.fixture(autouse=True)
def _tracing_off():
    assert not tracemalloc.is_tracing()
    yield
    tracemalloc.stop()


async def test_a_trace_ends_by_itself_and_reports_its_growth():
    slot = TraceSlot(FakeClock(), frames=5)
    reported = asyncio.Event()
    results = []

    async def report(session, growth):
        results.append((session.who, growth))
        reported.set()

    slot.start("ops", SHORT, report)
    assert tracemalloc.is_tracing()
    kept = [bytearray(1000) for _ in range(200)]
    await asyncio.wait_for(reported.wait(), timeout=30)
    assert not tracemalloc.is_tracing() and slot.session is None
    who, growth = results[0]
    assert who == "ops" and any("test_trace_slot.py" in g.where for g in growth)
    del kept


async def test_a_reporter_that_fails_still_leaves_the_trace_ended_and_the_slot_free(caplog):
    slot = TraceSlot(FakeClock(), frames=1)
    called = asyncio.Event()

    async def report(session, growth):
        called.set()
        raise RuntimeError("the channel is gone")

    slot.start("ops", SHORT, report)
    await asyncio.wait_for(called.wait(), timeout=30)
    await asyncio.sleep(0)
    assert not tracemalloc.is_tracing() and slot.session is None
    assert "could not be reported" in caplog.text
    slot.start("ops again", SHORT, report)  # the slot takes the next trace
    slot.cancel()


async def test_a_running_trace_refuses_another_and_cancel_stops_its_timer():
    slot = TraceSlot(FakeClock(), frames=1)
    reports = []

    async def report(session, growth):
        reports.append(session)

    slot.start("first", SHORT, report)
    with pytest.raises(TraceRunningError, match="started by first is running until 00:00 UTC"):
        slot.start("second", SHORT, report)
    assert slot.cancel() is not None and not tracemalloc.is_tracing()
    await asyncio.sleep(SHORT * 60 * 3)  # past the deadline: the cancelled timer does not fire
    assert reports == [] and slot.session is None
