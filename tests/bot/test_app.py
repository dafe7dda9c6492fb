"""The bot starts and stops under SimCord; process-level wiring (logging, layering)."""

from __future__ import annotations

import logging
import subprocess

import discord
import pytest
from sqlalchemy import event

from bot.app import extension_names
from bot.launcher import setup_logging
from tests.conftest import REPO_ROOT
from tests.settings import FAKE_TOKEN, make_settings


async def test_bot_starts_with_memory_extension_and_close_disposes_engine(simcord_env, simcord_bot):
    """Under SimCord the bot reaches READY with the polly extension loaded; close() disposes the engine."""
    bot = simcord_bot
    assert bot.is_ready()
    assert "polly" in bot.extensions
    assert bot.get_cog("MemoryCog") is not None
    assert bot.failed_extensions == {}
    disposed = []
    event.listen(bot.db.engine.sync_engine, "engine_disposed", disposed.append)
    await bot.close()
    assert disposed == [bot.db.engine.sync_engine]
    assert "polly" not in bot.extensions


def test_every_module_in_cogs_is_an_extension():
    assert "cogs.polls" in extension_names()
    assert all(not name.split(".")[-1].startswith("_") for name in extension_names())


def test_token_never_reaches_the_log(tmp_path, capsys):
    """Whatever logs the token, the handler writes it redacted."""
    token = FAKE_TOKEN
    root = logging.getLogger()
    before = list(root.handlers)
    setup_logging(make_settings(tmp_path, discord_token=token))
    try:
        logging.getLogger("anything").warning("connecting with %s", token)
        logging.getLogger("discord.http").info(f"header Bot {token}")  # noqa: G004 - on purpose
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
    err = capsys.readouterr().err
    assert token not in err
    assert err.count("[redacted]") == 2


def test_a_database_password_never_reaches_the_log_and_a_short_one_garbles_nothing(tmp_path, capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    long_url = "postgresql://polly:Hunter2pw-long@db:5432/polly"
    try:
        setup_logging(make_settings(tmp_path, database_url=long_url))
        logging.getLogger("asyncpg").warning("auth with Hunter2pw-long failed")
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        setup_logging(make_settings(tmp_path, database_url="postgresql://polly:pw@db:5432/polly"))
        logging.getLogger("anything").warning("a pwd-free line")
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Hunter2pw-long" not in err and "auth with [redacted] failed" in err
    assert "a pwd-free line" in err  # "pw" (too short to redact) does not garble every line


def banned_import(filename: str, source: str) -> bool:
    """Whether ruff's banned-import rule (TID251) rejects `source` as the file `filename`."""
    return (
        "TID251"
        in subprocess.run(
            ["ruff", "check", "--no-cache", "--select", "TID251", "--stdin-filename", filename, "-"],
            input=source,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        ).stdout
    )


def test_the_layering_rules_fire():
    """The core imports neither discord, nor the extension, nor Polly's own bot; the extension may use
    discord but never bot/ or cogs/; Polly's own bot may import anything of polly."""
    for core in ("polly/memory_utils.py", "polly/memory_layer.py"):
        for source in ("import discord\n", "from polly.ext import cog\n", "import polly.offline\n", "import bot\n"):
            assert banned_import(core, source), (core, source)
        assert not banned_import(core, "import sqlalchemy\n")
    for facing in ("polly/ext/cog.py", "polly/offline/console.py"):
        assert not banned_import(facing, "import discord\n")
        assert banned_import(facing, "from bot.app import PollyBot\n")
        assert banned_import(facing, "import cogs.polls\n")
    assert not banned_import("bot/app.py", "import discord\nfrom polly.ext.cog import MemoryCog\n")


class TestUnreachableAdminGuild:
    """A guild id the bot cannot register commands in is logged; the bot still starts."""

    @pytest.fixture
    def bot_settings(self, tmp_path):
        return make_settings(tmp_path, memory_admin_guild_ids="1000000000000000001,1000000000000000002")

    @pytest.fixture
    def simcord_env(self):  # started by hand below, after the fault is injected
        return None

    async def test_failed_guild_sync_is_logged_and_the_other_guild_still_works(self, simcord_bot, caplog):
        import simcord

        env = simcord.Env(simcord_bot)
        env.inject_error(
            "PUT",
            "/applications/*/guilds/1000000000000000001/commands",
            status=403,
            code=50001,
            message="Missing Access",
        )
        await env.start()
        try:
            assert simcord_bot.is_ready()
            assert any("Could not register /mem in guild 1000000000000000001" in r.getMessage() for r in caplog.records)
            synced = await simcord_bot.tree.fetch_commands(guild=discord.Object(1000000000000000002))
            assert [c.name for c in synced] == ["mem"]
        finally:
            await env.shutdown()


def test_only_polly_clock_reads_the_time():
    """One clock: the core and the extension read the time through polly.clock, which the extension
    sets to discord.py's once (so SimCord's virtual time is everyone's)."""
    readings = (
        "import time\nnow = time.time()\n",
        "from datetime import UTC, datetime\nnow = datetime.now(UTC)\n",
        "import discord\nnow = discord.utils.utcnow()\n",
    )
    for where in ("polly/registry.py", "polly/ext/background.py", "polly/offline/console.py"):
        for source in readings:
            assert banned_import(where, source), (where, source)
    assert not banned_import("polly/clock.py", readings[1])
    assert not banned_import("bot/poll_checks.py", readings[2])  # Polly's own bot is a host: its edge
