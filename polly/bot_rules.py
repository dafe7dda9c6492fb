"""The "bot objects growing" rule: a kind of task or view, the bot's unclosed HTTP sessions, or a
cog that survived its unload.

Tasks and views are counted at every tick, so a kind is judged on its run: rising by at least
ALERT_BOT_GROWTH_OBJECTS without ever falling for ALERT_BOT_GROWTH_MINUTES fires it; a fall, or a
whole window without a rise, clears it. Traffic does not look like that: tasks of a handler come
and go, views with a timeout expire, so their counts fall now and then. The state is four numbers
per kind (O(kinds), whatever the check interval). Sessions are counted at checkpoints: a rise of
ALERT_BOT_GROWTH_OBJECTS between the last two counts fires (one comparison already spans a
checkpoint interval). A survivor fires at once: a whole cog alive after its unload and a full
collection is a leak by itself.
"""

from __future__ import annotations

from datetime import datetime

from polly.alerts import Condition, Rule, Thresholds
from polly.bot_census import OTHER, BotCensus
from polly.formatting import format_duration
from polly.records import record


@record
class Run:
    """A kind's current run without a fall: from `since` (count `base`), last seen `last`."""

    since: datetime
    base: int
    last: int
    last_rise: datetime


def _ticked_counts(census: BotCensus) -> dict[str, int]:
    out = {f"task {t.name}": t.count for t in census.tasks if t.name != OTHER}
    out |= {f"view {v.name}": v.count for v in census.views if v.name != OTHER}
    return out


class BotGrowth:
    """Each kind's run, and the last two session counts; `conditions()` once per tick."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.sessions: list[tuple[datetime, int]] = []  # the last two counts (at, bot's unclosed)

    def conditions(self, census: BotCensus | None, at: datetime, t: Thresholds) -> list[Condition]:
        if census is None:
            return []
        window_s = t.bot_growth_minutes * 60
        out = []
        counts = _ticked_counts(census)
        runs = {}
        for subject, count in counts.items():
            run = self.runs.get(subject)
            if run is None or count < run.last:
                run = Run(at, count, count, at)  # a fall starts a new run
            elif count > run.last:
                run = Run(run.since, run.base, count, at)
            runs[subject] = run
            out.append(self._judged(subject, run, at, window_s, t, census))
        self.runs = runs  # a kind gone is no longer judged: its alert, if any, resolves
        out += self._sessions(census, t)
        out += [
            Condition(
                Rule.BOT_OBJECTS,
                f"survivor {s.name}",
                float(s.count),
                1.0,
                True,
                False,
                f"{s.count:,} {s.name} {'instance' if s.count == 1 else 'instances'} alive after "
                f"{'its' if s.count == 1 else 'their'} unload"
                + (f", held by {' → '.join(s.chain)}" if s.chain else " and a full collection (holder: /mem tasks)"),
                for_checks=1,
            )
            for s in census.survivors
        ]
        return out

    def _judged(
        self, subject: str, run: Run, at: datetime, window_s: float, t: Thresholds, census: BotCensus
    ) -> Condition:
        rise = run.last - run.base
        lasted = (at - run.since).total_seconds()
        flat_for = (at - run.last_rise).total_seconds()
        active = lasted >= window_s and rise >= t.bot_growth_objects and flat_for < window_s
        clear = rise == 0 or flat_for >= window_s
        kind, _, name = subject.partition(" ")
        if clear and rise > 0:
            what = "tasks running" if kind == "task" else "views of"
            detail = (
                f"{run.last:,} {what} {name}: no rise for {format_duration(flat_for)} (those still alive stay listed)"
            )
        elif kind == "task":
            task = next(k for k in census.tasks if k.name == name)
            where = f", waiting at {task.waits[-1]}" if task.waits else ""
            detail = (
                f"{run.last:,} tasks running {name}: +{rise:,} in {format_duration(lasted)} without a fall; "
                f"the oldest seen for {format_duration(task.oldest_s)}{where}"
            )
        else:
            view = next(v for v in census.views if v.name == name)
            detail = (
                f"{run.last:,} {name} views stored: +{rise:,} in {format_duration(lasted)} without a fall; "
                f"{view.no_timeout:,} without a timeout"
            )
        return Condition(
            Rule.BOT_OBJECTS, subject, float(rise), float(t.bot_growth_objects), active, clear, detail, for_checks=1
        )

    def _sessions(self, census: BotCensus, t: Thresholds) -> list[Condition]:
        sessions, at = census.sessions, census.sessions_at
        if sessions is None or at is None:
            return []
        if not self.sessions or self.sessions[-1][0] != at:
            self.sessions = [*self.sessions[-1:], (at, sessions.bot_unclosed)]
        if len(self.sessions) < 2:
            return []
        (before_at, before), (_, now) = self.sessions
        rise = now - before
        detail = (
            f"{now:,} unclosed HTTP sessions besides discord.py's: {rise:+,} since the count "
            f"{format_duration((at - before_at).total_seconds())} earlier; {sessions.connectors_open:,} connectors open"
        )
        return [
            Condition(
                Rule.BOT_OBJECTS,
                "sessions",
                float(rise),
                float(t.bot_growth_objects),
                rise >= t.bot_growth_objects,
                rise <= 0,
                detail,
                for_checks=1,
            )
        ]
