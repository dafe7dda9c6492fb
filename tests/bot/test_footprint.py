"""Polly's own footprint: what a started bot imports (the RSS figures are in `python -m benchmarks`)."""

from __future__ import annotations

import pytest

from tests.child_process import child_json

# Each of these cost RSS for nothing in a bot without HEALTH_PORT (measured in the issue and in
# benchmarks/footprint.py): they must stay out of sys.modules.
HEAVY_WITHOUT_HEALTH = ("aiohttp.web", "prometheus_client", "pydantic", "pydantic_settings", "tabulate", "dotenv")


def imported_after(code: str, cwd) -> set[str]:
    return set(child_json(f"{code}\nprint(json.dumps(sorted(sys.modules)))", cwd))


def created_bot_imports(tmp_path, first: str = "") -> set[str]:
    """The modules loaded once a SQLite bot without HEALTH_PORT is created (after `first`)."""
    return imported_after(
        f"{first}from bot.app import create_bot\nfrom polly.config import load_settings\n"
        "create_bot(load_settings(database_url='sqlite+aiosqlite:///" + str(tmp_path / "p.db") + "'))",
        tmp_path,
    )


def test_a_bot_without_health_port_imports_no_http_server_metrics_or_settings_library(tmp_path):
    modules = created_bot_imports(tmp_path)
    assert "bot.app" in modules and "cogs" in modules
    assert not [name for name in HEAVY_WITHOUT_HEALTH if name in modules]


# Loaded when first used: charts (a chart asked for), the fleet (a PostgreSQL database).
# (the post-mortem's report code loads only at a start that finds a previous run dead; the reply
# helpers with the first command; tracemalloc's analysis with the first trace or traced checkpoint)
ON_DEMAND = (
    "polly.allocation_trace",
    "polly.ext.discord_limits",
    "polly.ext.replies",
    "polly.chart",
    "polly.ext.chart_reply",
    "polly.ext.fleet_render",
    "polly.fleet",
    "polly.fleet_tables",
    "polly.post_mortem",
    "polly.stats_payload",  # /health and get_memory_stats()
)


# Loaded with the first /mem stats: the reply helpers and the RSS verdict.
SHOWN_ON_DEMAND = ("polly.ext.replies", "polly.rss_verdict")


def test_a_sqlite_bot_loads_neither_the_chart_nor_the_fleet_code(tmp_path):
    url = "sqlite+aiosqlite:///" + str(tmp_path / "p.db")
    modules = imported_after(
        "import discord\nfrom discord.ext import commands\nimport polly\n"
        f"polly.MemoryCog(commands.Bot('!', intents=discord.Intents.default()), "
        f"settings=polly.embedded_settings(database_url='{url}'))",
        tmp_path,
    )
    assert "polly.ext.cog" in modules and "polly.history" in modules
    assert not [name for name in ON_DEMAND if name in modules]


def test_the_health_server_brings_neither_aiohttp_web_nor_prometheus_client(tmp_path):
    modules = imported_after("import polly.ext.health", tmp_path)
    assert "polly.ext.http_server" in modules
    assert "aiohttp.web" not in modules and "prometheus_client" not in modules


@pytest.mark.parametrize("with_env_file", [False, True])
def test_python_dotenv_is_imported_only_when_a_dotenv_file_exists(tmp_path, with_env_file):
    if with_env_file:
        (tmp_path / ".env").write_text("DB_POOL_SIZE=3\n")
    modules = imported_after("from polly.config import load_settings\nload_settings()", tmp_path)
    assert ("dotenv" in modules) is with_env_file


def test_drawing_a_chart_loads_no_imaging_library_into_the_bot(tmp_path):
    """Pillow (~5 MiB) runs in the short-lived drawing process, never in the bot."""
    code = f"""
import asyncio
from datetime import timedelta
from datetime import UTC, datetime
from polly.ext.chart_reply import make_chart
from polly.host_settings import embedded_settings
from polly.memory_layer import MemoryLayer

async def draw():
    layer = MemoryLayer(embedded_settings(database_url='sqlite+aiosqlite:///{tmp_path / "p.db"}'),
                        clock=lambda: datetime.now(UTC))
    await layer.open()
    now = layer.monitor.clock()
    for minutes in range(60, 0, -1):
        layer.cycle.history.add(now - timedelta(minutes=minutes), 100 << 20, 1 << 30)
    chart = await make_chart(layer.cycle, 2, "test")
    assert chart.png.startswith(b"\\x89PNG")
    await layer.close()

asyncio.run(draw())
"""
    modules = imported_after(code, tmp_path)
    assert "polly.chart" in modules
    assert not {"PIL", "matplotlib", "polly.chart_png"} & modules


def test_tables_load_tabulate_at_the_first_command_not_at_start(tmp_path):
    """The started bot (ten ticks in SimCord) has no tabulate; the first /mem command's table brings it."""
    code = f"""
import asyncio, discord, simcord
from bot.app import create_bot
from polly.config import load_settings

async def run():
    bot = create_bot(load_settings(env_file=None, environ={{}}, database_url='sqlite+aiosqlite:///{tmp_path / "p.db"}'))
    async with simcord.run(bot) as env:
        guild = env.create_guild("g")
        ops = guild.create_text_channel("ops")
        admins = guild.create_role("a", permissions=discord.Permissions(administrator=True))
        you = guild.add_member(env.create_user("you"), roles=[admins])
        bot.owner_ids = {{you.id}}
        await env.advance_time(600)
        started = sorted(m for m in sys.modules if m.startswith(("tabulate", "wcwidth")))
        polly_started = sorted(m for m in sys.modules if m.startswith("polly"))
        await you.slash(ops, "mem stats")
        after = sorted(m for m in sys.modules if m.startswith(("tabulate", "wcwidth")))
        polly_after = sorted(m for m in sys.modules if m.startswith("polly"))
        found = {{"started": started, "after": after, "polly_started": polly_started, "polly_after": polly_after}}
        print(json.dumps(found))
        await bot.close()

asyncio.run(run())
"""
    found = child_json(code, tmp_path)
    assert found["started"] == []
    assert "tabulate" in found["after"] and "wcwidth" in found["after"]
    # Started (its first automatic checkpoint stored, with its RSS breakdown): what only a command
    # or a trace reads is not loaded yet; the first /mem stats brings the stats' own.
    assert "polly.rss_breakdown" in found["polly_started"]
    assert not {*ON_DEMAND, *SHOWN_ON_DEMAND} & set(found["polly_started"])
    assert set(SHOWN_ON_DEMAND) <= set(found["polly_after"])
