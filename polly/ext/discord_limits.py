"""Discord's message and embed limits, and the helpers that make anything we send fit them.

discord.py does not check Discord's limits: 2000 characters of content; embeds of 256 title, 4096
description, 256/1024 per field name/value, 25 fields, 6000 in all. Every builder clips what it
writes and `fit_embed` makes the final embed fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord

from polly.formatting import draw_table

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000
FOOTER_LIMIT = 2048
NAME_WIDTH = 28

COLOR_INFO = discord.Colour.blurple()
COLOR_OK = discord.Colour.green()
COLOR_WARN = discord.Colour.orange()
COLOR_FIRING = discord.Colour.red()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    return clip(name, width)


def code_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], limit: int = FIELD_VALUE_LIMIT) -> str:
    """A table in a code block, cut to whole rows (with an "… N more" line) to fit.

    The table is drawn once; the number of rows that fit is found by bisection over its drawn lines
    (/mem fleet cuts 1,000 rows in a few joins, not 1,000 drawings), then those rows are drawn again
    so their columns are only as wide as they need."""
    rows = [[str(cell).replace("\n", " ") for cell in row] for row in rows]
    lines = draw_table(rows, headers).split("\n")
    head, body = lines[:2], lines[2:]

    def block(shown: list[str], hidden: int) -> str:
        text = "\n".join(shown)
        if hidden:
            text += ("\n" if text else "") + f"… and {hidden} more"
        return f"```\n{text}\n```"

    whole = block(lines, 0)
    if len(whole) <= limit:
        return whole
    fits, too_many = 0, len(rows)  # the most rows that fit lies in [fits, too_many)
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if len(block([*head, *body[:middle]], len(rows) - middle)) <= limit:
            fits = middle
        else:
            too_many = middle
    shown = block(draw_table(rows[:fits], headers).split("\n") if fits else [], len(rows) - fits)
    return shown if len(shown) <= limit else clip(shown, limit)


def add_field(embed: discord.Embed, name: str, value: str, *, inline: bool = False) -> None:
    if len(embed.fields) >= FIELD_COUNT_LIMIT:
        return
    embed.add_field(name=clip(name, FIELD_NAME_LIMIT), value=clip(value or "—", FIELD_VALUE_LIMIT), inline=inline)


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Make any embed fit: clip title, description, footer and every field; keep at most 25 fields;
    then drop trailing fields (and clip the description last) until the whole is 6000 or less."""
    if embed.title:
        embed.title = clip(embed.title, TITLE_LIMIT)
    if embed.description:
        embed.description = clip(embed.description, DESCRIPTION_LIMIT)
    if embed.footer.text:
        embed.set_footer(text=clip(embed.footer.text, FOOTER_LIMIT), icon_url=embed.footer.icon_url)
    fields = embed.fields[:FIELD_COUNT_LIMIT]
    embed.clear_fields()
    for f in fields:
        add_field(embed, f.name or "—", f.value or "—", inline=bool(f.inline))
    while len(embed) > EMBED_TOTAL_LIMIT and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
    if len(embed) > EMBED_TOTAL_LIMIT and embed.description:
        embed.description = clip(embed.description, max(1, len(embed.description) - (len(embed) - EMBED_TOTAL_LIMIT)))
    return embed


def new_embed(title: str, description: str = "", colour: discord.Colour = COLOR_INFO) -> discord.Embed:
    return discord.Embed(
        title=clip(title, TITLE_LIMIT),
        description=clip(description, DESCRIPTION_LIMIT) or None,
        colour=colour,
    )


def error_line(text: str) -> str:
    return clip(f"❌ {text}", CONTENT_LIMIT)
