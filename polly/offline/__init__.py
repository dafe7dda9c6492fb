"""Try the memory extension on any bot with no Discord at all: `python -m polly.offline MODULE:ATTR`
(or `polly-offline MODULE:ATTR`) runs the bot in SimCord with a console. Needs the `offline` extra."""
