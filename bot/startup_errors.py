"""Why Polly's own bot could not reach Discord at start, as one line and an exit code.

The database side (and the exit codes) live in `polly.startup_errors`, shared with the extension."""

from __future__ import annotations

from polly.startup_errors import OutageError, causes


def discord_failure(exc: BaseException) -> OutageError | None:
    """A network failure reaching Discord at login, or None if `exc` is not one."""
    import aiohttp
    import discord

    chain = causes(exc)
    network = next((e for e in chain if isinstance(e, (aiohttp.ClientError, OSError, TimeoutError))), None)
    if network is not None:
        reason = str(network).splitlines()[0] if str(network) else type(network).__name__
        return OutageError(
            f"Discord cannot be reached ({reason}): check this machine's network, DNS and firewall "
            "(discord.com, port 443); exiting with 1 so a supervisor restarts the bot later"
        )
    server = next((e for e in chain if isinstance(e, discord.DiscordServerError)), None)
    if server is not None:
        return OutageError(f"Discord answered {server.status} at login: an outage on Discord's side; try again later")
    return None
