"""How the previous run ended: the verdict from the kernel's counter or the last figures, and the
run's record in a real database (SQLite file, and PostgreSQL): reported once, never for a clean stop."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from polly.alert_store import AlertStore
from polly.alerts import Rule, Transition
from polly.container import ContainerMemory
from polly.formatting import MIB
from polly.models import alert_events, runtime_settings
from polly.post_mortem import Verdict, judge
from polly.run_journal import RunJournal
from polly.run_record import RunRecord
from polly.trend import Trend
from tests.polly.test_alerts import make_sample

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CGROUP = "/sys/fs/cgroup/memory/bot"


def last_run(**changes: object) -> RunRecord:
    record = RunRecord("host h, pid 41, started 2026-01-01 00:00:00 UTC", "h", 41, T0, CGROUP, 0)
    figures = {"at": T0 + timedelta(hours=3), "rss": 700 * MIB, "limit": 1000 * MIB, "limit_source": "cgroup"}
    return replace(record, **{**figures, "percent": 70.0, "slope_mib_per_hour": 5.0, **changes})


def container(oom_kills: int | None, path: str = CGROUP) -> ContainerMemory:
    events = {} if oom_kills is None else {"max": 9, "oom_kill": oom_kills}
    return ContainerMemory(1, path, 1, None, None, events)


def test_a_clean_stop_has_nothing_to_report():
    assert judge(last_run(stopped_at=T0), container(5), 95, 60) is None


def test_the_kernel_s_counter_grown_in_the_same_cgroup_is_killed_for_memory():
    verdict = judge(last_run(), container(1), 95, 60)
    assert verdict is not None and verdict.verdict is Verdict.KILLED
    assert "memory.oom_control oom_kill 0 → 1" in verdict.evidence and CGROUP in verdict.evidence


def test_without_the_kernel_s_word_the_last_figures_decide():
    at_the_limit = judge(last_run(percent=96.5), container(0), 95, 60)
    assert at_the_limit is not None and at_the_limit.verdict is Verdict.LIKELY
    assert "counter did not grow" in at_the_limit.evidence and "96.5 %" in at_the_limit.evidence
    # 10 MiB short of the limit at 1200 MiB/h: reached within 30 s, before the next sample
    racing = judge(last_run(rss=990 * MIB, percent=99.0 - 10, slope_mib_per_hour=1200.0), None, 95, 60)
    assert racing is not None and racing.verdict is Verdict.LIKELY and "before the next sample" in racing.evidence
    quiet = judge(last_run(), container(0, path="/elsewhere"), 95, 60)
    assert quiet is not None and quiet.verdict is Verdict.UNCLEAN and "another cgroup" in quiet.evidence
    assert "not readable here" in judge(last_run(), container(None), 95, 60).evidence  # type: ignore[union-attr]


def test_the_report_says_the_verdict_evidence_figures_and_what_to_do():
    record = last_run(percent=97.0, growing=("Message +600",), firing=("memory_percent (process)",))
    report = judge(record, container(2), 95, 60)
    assert report is not None
    t = report.transition(T0 + timedelta(hours=4))
    assert (t.kind, t.rule, t.subject) == (Transition.REPORTED, Rule.PREVIOUS_RUN, record.run)
    for said in (
        "Killed for memory",
        "oom_kill 0 → 2",
        "RSS 700.0 MiB, 97.0 % of the 1000.0 MiB limit",
        "+5.0 MiB/h",
        "Message +600",
        "memory_percent (process)",
        "What to do",
    ):
        assert said in t.detail, said


def test_a_damaged_record_is_ignored():
    assert RunRecord.from_json("{not json") is None and RunRecord.from_json('{"run": 1}') is None
    assert RunRecord.from_json(last_run().to_json()) == last_run()


async def _clear(database) -> None:
    async with database.transaction() as conn:
        await conn.execute(delete(alert_events))
        await conn.execute(delete(runtime_settings))


async def test_runs_on_a_real_database_report_once_and_never_after_a_clean_stop(each_database, monkeypatch):
    await _clear(each_database)
    store = AlertStore(each_database, 100, "bot-1")
    clock = iter(T0 + timedelta(minutes=m) for m in range(100))

    def journal() -> RunJournal:
        return RunJournal(store, "bot-1", lambda: next(clock))

    first = journal()
    assert await first.begin(container(0), 95, 60) is None  # nothing known before: nothing to say
    sample = replace(make_sample(960), container=container(0))
    await first.note(sample, Trend(30.0, 5, 600, None), (), ())
    monkeypatch.setattr("polly.run_journal.PROCESS_ID", "next")  # the next start is another process

    second = journal()  # the first was killed (no stop): at 96 % of the limit, no kernel word
    report = await second.begin(container(0), 95, 60)
    assert report is not None and report.verdict is Verdict.LIKELY and second.previous is report
    (event,) = await store.undelivered()
    assert (event.kind, event.rule, event.subject) == ("reported", "previous_run", first.record.run)  # type: ignore[union-attr]
    assert await store.firing() == []  # a report is not an alert that fires: nothing to restore

    await second.stop()  # :quit
    monkeypatch.setattr("polly.run_journal.PROCESS_ID", "third")
    third = journal()
    assert await third.begin(container(1), 95, 60) is None  # stopped cleanly: nothing, whatever the counter
    assert len(await store.undelivered()) == 1


async def test_a_reload_of_the_same_process_is_not_a_death(db):
    store = AlertStore(db, 100, "bot-1")
    first = RunJournal(store, "bot-1", lambda: T0)
    await first.begin(None, 95, 60)
    again = RunJournal(store, "bot-1", lambda: T0)  # the stop mark was refused (database down at unload)
    assert await again.begin(None, 95, 60) is None
    assert await store.undelivered() == []


async def test_a_container_restart_is_a_death_though_pid_and_host_are_the_same(db):
    """In a container the bot is pid 1 of the same host name every run: a restart is still a death."""
    import os
    import socket

    store = AlertStore(db, 100, "bot-1")
    dead = replace(last_run(), host=socket.gethostname(), pid=os.getpid(), process="an-earlier-container-run")
    await store.set_setting("run:bot-1", dead.to_json())
    report = await RunJournal(store, "bot-1", lambda: T0).begin(container(0), 95, 60)
    assert report is not None and report.verdict is Verdict.UNCLEAN
