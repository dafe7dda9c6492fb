"""Process wiring: settings in, a ready `commands.Bot` out (`create_bot`), `python -m bot` to run."""

from bot.app import PollyBot, create_bot

__all__ = ["PollyBot", "create_bot"]
