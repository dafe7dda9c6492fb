"""The limit-fitting helpers on their own: whatever goes in, what comes out fits Discord's limits."""

from __future__ import annotations

import discord

from polly.ext.discord_limits import (
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_VALUE_LIMIT,
    clip,
    code_table,
    error_line,
    fit_embed,
    new_embed,
)
from tests.cogs.helpers import assert_within_discord_limits


def test_clip_keeps_short_text_and_marks_a_cut_with_an_ellipsis():
    assert clip("short", 10) == "short"
    assert clip("x" * 11, 10) == "x" * 9 + "…"
    assert len(clip("x" * 5000, 1024)) == 1024


def test_a_long_table_is_cut_to_whole_rows_and_says_how_many_more():
    rows = [(f"structure_{i}", f"{i:,}") for i in range(200)]
    block = code_table(rows, ("structure", "size"))
    assert len(block) <= FIELD_VALUE_LIMIT
    assert block.startswith("```\n") and block.endswith("\n```")
    shown = [line for line in block.splitlines() if line.startswith("structure_")]
    assert f"… and {200 - len(shown)} more" in block
    assert shown[-1].split()[0] == f"structure_{len(shown) - 1}"  # whole rows, in order


def test_a_table_that_fits_has_no_more_line():
    block = code_table([("a", "1"), ("b", "2")], ("name", "n"))
    assert "more" not in block and block.count("\n") == 5


def embed_with_30_fields(description: str, footer: str) -> discord.Embed:
    embed = discord.Embed(title="t" * 300, description=description)
    for i in range(30):
        embed.add_field(name=f"n{i}" * 200, value="v" * 2000)
    embed.set_footer(text=footer)
    return embed


def test_an_embed_with_30_oversized_fields_keeps_the_leading_ones_within_limits():
    fitted = fit_embed(embed_with_30_fields("d" * 500, "sample of 12:00 UTC"))
    assert_within_discord_limits(None, [fitted])
    assert 0 < len(fitted.fields) < FIELD_COUNT_LIMIT
    assert [f.name[:2] for f in fitted.fields] == [f"n{i}" for i in range(len(fitted.fields))]


def test_an_embed_of_only_oversized_parts_still_fits():
    fitted = fit_embed(embed_with_30_fields("d" * 5000, "f" * 3000))
    assert_within_discord_limits(None, [fitted])
    assert len(fitted) <= EMBED_TOTAL_LIMIT


def test_new_embed_and_error_line_clip_what_they_are_given():
    embed = new_embed("x" * 1000, "y" * 10_000)
    assert_within_discord_limits(error_line("z" * 5000), [embed])
    assert error_line("bad").startswith("❌ ")


def test_a_resolved_alert_whose_clock_went_back_says_so_instead_of_a_negative_duration():
    """A restart under SimCord's virtual clock (it starts at 2026-01-01 again) restored an alert that
    fired "later": it used to say it lasted -120000 ms."""
    from datetime import UTC, datetime, timedelta

    from polly.alerts import AlertTransition, Rule, Transition
    from polly.ext.alert_render import alert_embed

    at = datetime(2026, 1, 1, tzinfo=UTC)
    resolved = AlertTransition(Transition.RESOLVED, Rule.MEMORY, "process", 70, 80, "ok", at, at + timedelta(minutes=2))
    lasted = next(f.value for f in alert_embed(resolved, None).fields if f.name == "Lasted")
    assert lasted == "unknown (the clock went back since it fired)"
    normal = AlertTransition(Transition.RESOLVED, Rule.MEMORY, "process", 70, 80, "ok", at, at - timedelta(minutes=2))
    assert next(f.value for f in alert_embed(normal, None).fields if f.name == "Lasted") == "2 min"
