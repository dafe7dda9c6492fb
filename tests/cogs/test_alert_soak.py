"""Chaos soak: the real bot through SimCord for 7 simulated days, a restart every night.

Each day provokes alerts (tracked structures filling and emptying, a flood of 15 at once) while
posting fails with 5xx and 429 bursts, the alert channel is deleted and set anew, the bot loses
the right to post, the SQLite file is locked by another connection (also while a flood is being
posted: the posts go out, their "delivered" marks fail), the bot restarts in the middle of a 5xx
burst with alerts waiting, two threshold changes arrive at once, the alert history keeps only 20
events (less than a day's flood: restoring must not depend on it), and the rules raise. Every
alert transition the monitor produced (recorded from its ticks) must reach a channel exactly
once, individually or in a summary; nothing fires that was not provoked; the loop lives; the
bot's own structures stay bounded. The figures are logged (and quoted in the README).
"""

from __future__ import annotations

import collections
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import simcord

from bot.app import create_bot
from polly import alert_outbox, monitor_cycle
from polly.alerts import Transition
from polly.ext.cog import memory_cog
from polly.registry import registry
from tests.cogs.helpers import add_ops_guild, assert_within_discord_limits
from tests.settings import make_settings

FLOOD = 15
MARKS = {"🔴": Transition.FIRED, "🟠": Transition.REPEATED, "🟢": Transition.RESOLVED}
SUMMARY_LINE = re.compile(r"^`(\d\d-\d\d \d\d:\d\d)` \S+ (fired|repeated|resolved) · .+ · (.+)$")


@dataclass
class Ledger:
    produced: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, subject, "MM-DD HH:MM")
    posted: list[tuple[str, str, str]] = field(default_factory=list)
    individual: int = 0
    summaries: int = 0
    summarised: int = 0
    provoked: set[str] = field(default_factory=set)
    faults: collections.Counter = field(default_factory=collections.Counter)


def key(kind: str, subject: str, at) -> tuple[str, str, str]:
    return kind, subject, f"{at:%m-%d %H:%M}"


def collect_posts(channel, ledger: Ledger) -> None:
    for message in channel.history():
        if not (message.author.bot and message.embeds):
            continue
        assert_within_discord_limits(message.content, message.embeds)
        embed = message.embeds[0]
        title = embed.title or ""
        if title[:1] in MARKS:
            rule_field = next(f.value for f in embed.fields if f.name == "Rule")
            subject = rule_field.split(" · ", 1)[1]
            ledger.posted.append(key(MARKS[title[:1]].value, subject, embed.timestamp))
            ledger.individual += 1
        elif title.startswith("📋"):
            ledger.summaries += 1
            for line in (embed.description or "").splitlines():
                found = SUMMARY_LINE.match(line)
                if found:
                    ledger.posted.append((found[2], found[3], found[1]))
                    ledger.summarised += 1


def fill(name: str, ledger: Ledger) -> None:
    registry.bounded_dict(name, max_size=10).update({k: k for k in range(9)})
    ledger.provoked.add(name)


def empty(name: str) -> None:
    registry.get(name).target.clear()


class Unmeasurable:
    """A tracked structure whose size cannot be read (a rule input that raises)."""

    def __len__(self) -> int:
        raise RuntimeError("cannot count on purpose")


def record_transitions(monkeypatch, ledger: Ledger) -> None:
    """Record every transition the monitor produces, in every bot of the soak (the memory cog is
    built when a bot starts; the ticks are otherwise untouched)."""
    real_tick = monitor_cycle.MonitorCycle.tick

    async def tick(self, *args, **kwargs):
        result = await real_tick(self, *args, **kwargs)
        ledger.produced.extend(
            key(e.transition.kind.value, e.transition.subject, e.transition.at) for e in result.events
        )
        return result

    monkeypatch.setattr(monitor_cycle.MonitorCycle, "tick", tick)


async def restart(env, bot, settings, ledger: Ledger, fault: str):
    """A new process on the same database (SimCord keeps the guild, channels and messages)."""
    await bot.close()
    bot = create_bot(settings)
    await env.restart_bot(bot)
    ledger.faults[fault] += 1
    return bot


def hold_write_lock(settings) -> sqlite3.Connection:
    locker = sqlite3.connect(settings.sqlite_path(), timeout=1)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


async def two_threshold_changes_at_once(day: int, bot, ledger: Ledger) -> None:
    """Two operators' `/mem alerts threshold:` at once (discord.py runs each interaction as its own
    task; SimCord's test user sends one at a time, so the two calls the cog makes run together):
    both apply and stay in force, the second not computed from the thresholds the first replaced."""
    import asyncio

    wanted = {"pool_overflow_percent": 40.0 + day, "checkpoint_growth_percent": 25.0 + day}
    ops = memory_cog(bot).ops
    await asyncio.gather(*(ops.alerts(threshold=name, value=value) for name, value in wanted.items()))
    thresholds = memory_cog(bot).cycle.engine.thresholds
    assert {name: getattr(thresholds, name) for name in wanted} == wanted
    ledger.faults["concurrent threshold changes"] += 1


async def one_day(day: int, env, bot, ops, operator, settings, ledger: Ledger, monkeypatch):
    """One simulated day of alerts and faults; returns the alert channel and the bot at its end."""
    path = f"/channels/{ops.id}/messages"
    midnight = env.now().replace(hour=0, minute=0, second=0, microsecond=0)

    async def until(hour: float) -> None:
        await env.advance_time((midnight + timedelta(hours=hour) - env.now()).total_seconds())

    names = [f"soak_{day}_a{i}" for i in range(3)]
    await until(2)
    for name in names:
        fill(name, ledger)
    await until(2.5)
    env.inject_error("POST", path, status=503, times=None)  # a 5xx burst on posting
    ledger.faults["5xx minutes"] += 60
    if day % 3 == 1:  # the bot restarts while the day's first alerts wait to be posted
        await until(3)
        bot = await restart(env, bot, settings, ledger, "restarts mid-post")
    await until(3.5)
    env.backend.faults.clear()
    await until(4)
    for name in names:
        empty(name)

    await until(6)
    env.inject_error("POST", path, status=429, message="You are being rate limited.", times=20)
    ledger.faults["429 responses"] += 20
    fill(f"soak_{day}_r", ledger)
    await until(6.5)
    env.backend.faults.clear()
    empty(f"soak_{day}_r")

    flood = [f"soak_{day}_f{i:02d}" for i in range(FLOOD)]
    await until(8)
    for name in flood:
        fill(name, ledger)
    if day % 3 == 2:  # the flood fires (two checks) and is posted while the database is locked
        await until(8 + 7 / 60)
        locker = hold_write_lock(settings)
        ledger.faults["database locked while posting checks"] += 3
        await env.advance_time(3 * 300)
        locker.rollback()
        locker.close()
    await until(9)
    for name in flood:
        empty(name)

    await until(10)
    await two_threshold_changes_at_once(day, bot, ledger)

    await until(11)
    collect_posts(ops, ledger)
    env.backend.delete_channel(ops.id)  # the alert channel is deleted
    ledger.faults["alert channel deleted"] += 1
    fill(f"soak_{day}_b", ledger)
    await until(12)
    ops = ops.guild.create_text_channel(f"ops-{day}")
    await operator.slash(ops, "mem alerts", channel=ops)  # and set anew
    path = f"/channels/{ops.id}/messages"
    await until(13)
    empty(f"soak_{day}_b")

    await until(14)
    env.inject_error("POST", path, status=403, code=50013, message="Missing Permissions", times=None)
    ledger.faults["403 minutes"] += 60
    fill(f"soak_{day}_c", ledger)
    await until(15)
    env.backend.faults.clear()
    await until(16)
    empty(f"soak_{day}_c")

    if day in (2, 5):  # another connection holds the SQLite write lock for three checks
        await until(17)
        locker = hold_write_lock(settings)
        ledger.faults["database locked checks"] += 3
        fill(f"soak_{day}_d", ledger)
        await env.advance_time(3 * 300)
        locker.rollback()
        locker.close()
        await until(18)
        empty(f"soak_{day}_d")

    await until(19)
    registry.register("soak_unmeasurable", Unmeasurable(), max_size=10)  # one structure's rule input raises
    ledger.faults["unmeasurable structure hours"] += 1

    def broken_rules(*_args, **_kwargs):
        raise RuntimeError("a rule raised on purpose")

    with pytest.MonkeyPatch.context() as broken:  # and then every rule (the recording stays patched)
        broken.setattr(monitor_cycle, "evaluate_rules", broken_rules)
        ledger.faults["failing rule ticks"] += 3
        await env.advance_time(3 * 300)
    fill(f"soak_{day}_e", ledger)  # still firing at the restart: the next bot resolves it
    await until(20)
    registry.unregister("soak_unmeasurable")

    await until(23.9)
    cog = bot.get_cog("MemoryCog")
    assert cog.monitor_loop.is_running() and not cog.monitor_loop.failed()
    assert memory_cog(bot).cycle.health.backoff_factor == 1
    assert len(memory_cog(bot).cycle.alerts.memory) <= alert_outbox.MEMORY_QUEUE_SIZE
    assert len(memory_cog(bot).monitor.history) <= settings.memory_history_size
    return ops, bot


async def soak(days: int, settings, ledger: Ledger, monkeypatch) -> None:
    record_transitions(monkeypatch, ledger)
    bot = create_bot(settings)
    async with simcord.run(bot, settle_timeout=60) as env:
        _, ops, operator = add_ops_guild(env, bot)
        await operator.slash(ops, "mem alerts", channel=ops)
        for day in range(days):
            ops, bot = await one_day(day, env, bot, ops, operator, settings, ledger, monkeypatch)
            await until_midnight(env)
            bot = await restart(env, bot, settings, ledger, "restarts")  # a new process, same database
            thresholds = memory_cog(bot).cycle.engine.thresholds  # the day's changes were stored
            assert (thresholds.pool_overflow_percent, thresholds.checkpoint_growth_percent) == (40 + day, 25 + day)
            if day > 0:
                empty(f"soak_{day - 1}_e")
        await env.advance_time(2 * 3600)  # the last day's alerts resolve and go out
        empty(f"soak_{days - 1}_e")
        await env.advance_time(3600)
        collect_posts(ops, ledger)
        await bot.close()


async def until_midnight(env) -> None:
    now = env.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    await env.advance_time((midnight - now).total_seconds())


@pytest.fixture
def soak_settings(tmp_path):
    return make_settings(
        tmp_path,
        alert_dict_fill_percent=50,
        alert_for_checks=2,
        alert_hysteresis_percent=5,
        alert_repeat_minutes=240,
        alert_history_size=20,  # less than a day's flood: restoring must not depend on the history
        # Checks every 5 minutes (288 a day): a week of them costs a minute or two of real time.
        memory_check_interval_seconds=300,
    )


@pytest.mark.soak
async def test_days_of_chaos_deliver_every_alert_exactly_once(soak_settings, monkeypatch, pytestconfig):
    """Seven days in CI (`--soak-days 7`, about two minutes); one day in a plain `pytest` run."""
    days = pytestconfig.getoption("soak_days")
    ledger = Ledger()
    started = time.perf_counter()
    try:
        await soak(days, soak_settings, ledger, monkeypatch)
    finally:
        for name in [t.name for t in registry if t.name.startswith("soak_")]:
            registry.unregister(name)
    produced, posted = collections.Counter(ledger.produced), collections.Counter(ledger.posted)
    missing = produced - posted
    doubled = {k: n for k, n in posted.items() if n > 1}
    unexpected = posted - produced
    fired = [k for k in ledger.produced if k[0] == Transition.FIRED.value]
    false = [k for k in fired if k[1] not in ledger.provoked]
    report = (
        f"soak: {days} days, {len(ledger.produced)} transitions ({len(fired)} fired), {len(ledger.posted)} "
        f"delivered ({ledger.individual} posts, {ledger.summaries} summaries listing {ledger.summarised}), "
        f"missing {sum(missing.values())}, doubled {len(doubled)}, unexpected {sum(unexpected.values())}, "
        f"false {len(false)}; faults {dict(ledger.faults)}; {time.perf_counter() - started:.0f} s"
    )
    print(report)  # the figures the README quotes (pytest -s)
    assert len(fired) >= days * (FLOOD + 7)
    assert not missing, f"never posted: {sorted(missing)[:10]}"
    assert not doubled, f"posted more than once: {sorted(doubled)[:10]}"
    assert not unexpected, f"posted but never produced: {sorted(unexpected)[:10]}"
    assert not false, f"alerts nobody provoked: {false[:10]}"
