"""The "bot objects growing" rule on its own: runs without a fall, flat windows, sessions, survivors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from polly.alerts import Rule, Thresholds
from polly.bot_census import BotCensus, SessionCensus, Survivor, TaskKind, ViewKind, census_growth
from polly.bot_rules import BotGrowth

T = replace(Thresholds.default(), bot_growth_minutes=5, bot_growth_objects=5)
START = datetime(2026, 1, 1, tzinfo=UTC)


def census(tasks: int = 0, views: int = 0, sessions: int | None = None, at: datetime | None = None, survivors=()):
    return BotCensus(
        tasks=(TaskKind("Cog.wait", tasks, 0.0, ("Cog.wait (cogs/x.py:3)",)),) if tasks else (),
        task_total=tasks,
        views=(ViewKind("cogs.x.Buttons", views, views, 0, views),) if views else (),
        view_total=views,
        dynamic_items=0,
        listeners=(),
        loops=(),
        survivors=tuple(survivors),
        children=(),
        sessions=None if sessions is None else SessionCensus(sessions, sessions, 0, sessions),
        sessions_at=at,
    )


def run(rule: BotGrowth, counts: list[int], kind: str = "tasks") -> list:
    out = []
    for minute, n in enumerate(counts):
        out.append(rule.conditions(census(**{kind: n}), START + timedelta(minutes=minute), T))
    return out


def test_a_kind_rising_without_a_fall_for_the_window_fires_and_a_fall_clears_it():
    rule = BotGrowth()
    ticks = run(rule, [1, 2, 3, 3, 4, 6, 7, 2])
    states = [(c[0].active, c[0].clear) for c in ticks]
    assert states[:5] == [(False, True), (False, False), (False, False), (False, False), (False, False)]
    assert states[5] == (True, False)  # 5 min without a fall, +5
    assert states[7] == (False, True)  # a fall starts a new run
    assert ticks[5][0].subject == "task Cog.wait" and "6 tasks running Cog.wait: +5 in 5 min" in ticks[5][0].detail


def test_traffic_that_comes_and_goes_never_fires_and_a_plateau_clears():
    assert not any(c[0].active for c in run(BotGrowth(), [3, 9, 4, 10, 5, 11, 6, 12, 7, 13], "views"))
    ticks = run(BotGrowth(), [0, 2, 4, 6, 8, 10, 10, 10, 10, 10, 10, 10], "views")
    assert not ticks[5][0].active  # the kind appeared at minute 1: 4 min of rise so far
    assert ticks[6][0].active and not ticks[6][0].clear
    assert ticks[10][0].clear  # a whole window without a rise
    assert ticks[10][0].detail == "10 views of cogs.x.Buttons: no rise for 5 min (those still alive stay listed)"


def test_sessions_are_judged_between_two_counts_and_survivors_at_once():
    rule = BotGrowth()
    assert rule.conditions(census(sessions=1, at=START), START, T) == []
    (c,) = rule.conditions(census(sessions=9, at=START + timedelta(hours=1)), START + timedelta(hours=1), T)
    assert c.subject == "sessions" and c.active and c.value == 8
    survivor = Survivor("cogs.x.Cog", "cog", 2, START, ("cogs.hooks.HANDLERS (list)", "Cog"))
    (s,) = rule.conditions(census(survivors=[survivor]), START, T)
    assert s.rule is Rule.BOT_OBJECTS and s.active and s.for_checks == 1
    assert s.detail == "2 cogs.x.Cog instances alive after their unload, held by cogs.hooks.HANDLERS (list) → Cog"
    (unheld,) = rule.conditions(census(survivors=[replace(survivor, chain=())]), START, T)
    assert unheld.detail.endswith("alive after their unload and a full collection (holder: /mem tasks)")


def test_a_census_round_trips_and_two_compare_by_kind():
    before = census(tasks=2, views=1)
    after = census(tasks=7, views=1, sessions=3, at=START)
    assert BotCensus.from_dict(after.to_dict()) == after
    # sessions were not counted before: no growth known for them
    assert [(g.name, g.change) for g in census_growth(before, after)] == [("task Cog.wait", 5)]
