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
from tests.settings import make_settings


async def test_bot_starts_with_memory_extension_and_close_disposes_engine(simcord_env, simcord_bot):
    """Under SimCord the bot reaches READY with cogs.memory loaded; close() disposes the engine."""
    bot = simcord_bot
    assert bot.is_ready()
    assert "cogs.memory" in bot.extensions
    assert bot.get_cog("MemoryCog") is not None
    assert bot.failed_extensions == {}
    disposed = []
    event.listen(bot.db.engine.sync_engine, "engine_disposed", disposed.append)
    await bot.close()
    assert disposed == [bot.db.engine.sync_engine]
    assert "cogs.memory" not in bot.extensions


def test_every_module_in_cogs_is_an_extension():
    assert "cogs.memory" in extension_names()
    assert all(not name.split(".")[-1].startswith("_") for name in extension_names())


def test_token_never_reaches_the_log(tmp_path, capsys):
    """Whatever logs the token, the handler writes it redacted."""
    token = "MTIz.secret-token-value.xyz"
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


def test_core_may_not_import_discord_and_the_rule_fires():
    """ruff's banned-import rule rejects `import discord` in polly/ (except background_tasks.py)."""

    def check(filename: str) -> str:
        return subprocess.run(
            ["ruff", "check", "--no-cache", "--select", "TID251", "--stdin-filename", filename, "-"],
            input="import discord\n",
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        ).stdout

    assert "TID251" in check("polly/memory_utils.py")
    assert "TID251" not in check("polly/background_tasks.py")
    assert "TID251" not in check("cogs/memory.py")


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
