"""`python -m bot --offline`: the real bot in SimCord, driven through a pipe, as a script would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polly.offline.console_input import ConsoleInputError, completions, parse_duration, split_command
from tests.bot.offline_process import start_offline
from tests.conftest import REPO_ROOT


def offline(tmp_path, script: str | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_", "DISCORD_", "MEMORY_"))}
    clean.update(PYTHONPATH=str(REPO_ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'offline.db'}")
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "bot", "--offline", *args],
        input=script,
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_piped_commands_print_replies_and_alerts_and_exit_0(tmp_path):
    result = offline(
        tmp_path,
        "/mem stats\n/mem cleanup dry_run:true\n/mem checkpoint label:before\n:leak 1000\n:advance 2m\n"
        ":advance 1m\n:channel\n/mem alerts\n",
    )
    out = result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    assert "> /mem stats" in out and "■ Memory of this bot process" in out and "(only you can see this)" in out
    assert "RSS **" in out and "```" in out  # code blocks kept
    assert "Cleanup dry run: nothing was changed" in out
    assert "Checkpoint 'before' stored" in out
    assert "message_fetch_failures holds 1,000 of at most 1,000" in out
    fired = out.index("■ 🔴 Tracked structure filling up")
    assert out.index(":advance 1m") < fired  # not before the third tick
    assert "#ops: 1 message(s)" in out
    assert "Firing (1)" in out  # /mem alerts shows it
    assert (tmp_path / "offline.db").exists()  # the real database from DATABASE_URL
    assert "Guilds intent" not in result.stderr and "voice will NOT" not in result.stderr  # SimCord's probe


def test_sessions_without_database_url_start_clean_on_a_throwaway_database_and_logs_have_no_colour(tmp_path):
    """Each session's simulated Discord is new: a session not given DATABASE_URL must not inherit the
    last one's alerts or alert channel (which started it with "Unknown Channel" and a tick error)."""
    script = ":leak 1000\n:advance 3m\n/mem stats\n"
    for _ in range(2):
        result = offline(tmp_path, script, DATABASE_URL="")
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert out.startswith("Database: a throwaway SQLite file for this session (")
        folder = Path(re.search(r"this session \((\S+)\)", out).group(1)).parent  # type: ignore[union-attr]
        assert not folder.exists()  # removed at the end
        assert "Unknown Channel" not in out and "no longer exists" not in out
        assert re.search(r"\d+ ticks, 0 errors", out)
        assert "\x1b[" not in out  # no colour codes in a pipe, even in a container
    assert not (tmp_path / "data" / "polly.db").exists()  # the default file is never made
    given = offline(tmp_path, "/mem pool\n")
    assert given.stdout.startswith("Database: DATABASE_URL (kept between sessions)")


def test_a_second_session_on_a_kept_database_finds_ops_at_its_first_tick(tmp_path):
    """With DATABASE_URL the database outlives the session: an alert firing when the first ended
    is answered at the second's first tick, in #ops, which exists before that tick (it once ran
    before #ops was made: "the alert channel … no longer exists")."""
    first = offline(tmp_path, ":leak 1000\n:advance 3m\n")
    assert first.returncode == 0 and "Tracked structure filling up" in first.stdout
    second = offline(tmp_path, ":advance 1m\n:channel\n/mem stats\n")
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    assert "no longer exists" not in out and "Unknown Channel" not in out
    assert "Resolved: Tracked structure filling up" in out  # restored, then resolved: the structure is empty
    assert re.search(r"\d+ ticks, 0 errors", out)


def test_bad_input_gets_a_clear_message_the_session_continues_and_exit_is_1(tmp_path):
    result = offline(
        tmp_path,
        "/mem nope\n/mem cleanup dry_run:maybe\n/mem checkpoint colour:red\n/mem alerts channel:#nowhere\n"
        ':advance soon\n:leak lots\n:frobnicate\n/mem checkpoint label:"unterminated\n/mem pool\n',
    )
    out = result.stdout
    assert result.returncode == 1
    assert "❌ Unknown command '/mem nope': try one of /mem alerts, /mem chart, /mem checkpoint" in out
    assert "❌ Option 'dry_run' expects true or false, not 'maybe'" in out
    assert "❌ /mem checkpoint has no option 'colour' (options: label, compare_to, trace)" in out
    assert "❌ Option 'channel' expects a channel (#ops, #general), not '#nowhere'" in out
    assert "❌ 'soon' is not a duration" in out
    assert "❌ :leak needs a whole number" in out
    assert "❌ Unknown console verb ':frobnicate'" in out
    assert "close your quotes" in out
    assert "Database pool: AsyncAdaptedQueuePool" in out  # the session went on
    assert "Traceback" not in out + result.stderr


def test_discord_side_validation_is_shown_too(tmp_path):
    """A label over 100 characters is refused by Discord's option limits, as in the client."""
    result = offline(tmp_path, f"/mem checkpoint label:{'x' * 101}\n/mem checkpoint compare_to:missing\n")
    assert result.returncode == 1
    assert "❌ Option 'label' of 'mem checkpoint'" in result.stdout
    assert "❌ No checkpoint is named 'missing'" in result.stdout


def test_demo_runs_the_tour_end_to_end(tmp_path):
    result = offline(tmp_path, None, "--demo")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    steps = [
        "■ Memory of this bot process",
        "Checkpoint 'demo-start' stored",
        "Recorded 1,000 message-fetch failures",
        "■ 🔴 Tracked structure filling up",
        "■ 🟠 Still firing: Tracked structure filling up",
        "■ Cleanup done",
        "Memory cleanup run by you",
        "■ 🟢 Resolved: Tracked structure filling up",
        "Checkpoint 'demo-end' stored",
        "Since 'demo-start'",
        "· last 2 h",
        "1 alert(s) fired, 1 resolved · 1 manual and",
        "📎 memory-chart.png saved to data/offline/",
        "500 members joined and posted one message each in #general",
        "% full of 1,000 · member cache all",
        "5,000 LeakyWidget objects are now held",
        "Checkpoint 'hunt-end' stored",
        "polly.offline.demo_leak.LeakyWidget",
        "Inspect: polly.offline.demo_leak.LeakyWidget",
        "polly.offline.demo_leak.leaked_widgets (list) → LeakyWidget",
    ]
    position = 0
    for step in steps:  # each step after the one before (some texts appear more than once)
        position = out.index(step, position) + len(step)
    assert not (tmp_path / "offline.db").exists()  # the tour keeps out of the operator's database
    throwaway = re.search(r"a throwaway SQLite file for this session \((\S+)\), removed at the end", out)
    assert throwaway is not None and not Path(throwaway.group(1)).parent.exists()  # and removes what it made
    saved = re.search(r"saved to (data/offline/\S+\.png)", out)
    assert saved is not None and (tmp_path / saved.group(1)).read_bytes().startswith(b"\x89PNG")


def test_without_simcord_it_says_how_to_install(tmp_path):
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\nclass _Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'simcord': raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    result = offline(tmp_path, "/mem stats\n", PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO_ROOT}")
    assert result.returncode == 2
    assert "uv sync --extra offline" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("1h30m", 5400), ("45s", 45), ("2d", 172800), ("1.5h", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_command_lines_split_into_words_and_options():
    assert split_command('/mem checkpoint label:"a b" trace:true') == (
        ["mem", "checkpoint"],
        {"label": "a b", "trace": "true"},
    )
    with pytest.raises(ConsoleInputError, match="name:value"):
        split_command("/mem checkpoint label:a stray")


def test_tab_completes_command_names_and_verbs():
    names = ["mem alerts", "mem checkpoint", "mem cleanup", "mem pool", "mem stats"]
    assert completions("/mem st", names) == ["/mem stats"]
    assert completions("/mem c", names) == ["/mem checkpoint", "/mem cleanup"]
    assert completions(":a", names) == [":advance"]
    assert completions("/nothing", names) == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed: no terminal to type into")
def test_in_a_terminal_tab_completes_and_the_reply_shows(tmp_path):
    """A real terminal (tmux): type '/mem st', press Tab, Enter; the stats reply appears."""
    session = f"polly-{os.getpid()}"
    env = f"PYTHONPATH={REPO_ROOT} DATABASE_URL=sqlite+aiosqlite:///{tmp_path / 'tty.db'}"
    command = f"cd {tmp_path} && env {env} {sys.executable} -m bot --offline"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "80", command], check=True)
    try:

        def screen() -> str:
            return subprocess.run(
                ["tmux", "capture-pane", "-p", "-S", "-200", "-t", session], capture_output=True, text=True
            ).stdout

        def wait_for(text: str) -> str:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                shown = screen()
                if text in shown:
                    return shown
                time.sleep(0.2)
            raise AssertionError(f"{text!r} never appeared:\n{screen()}")

        wait_for("polly>")
        subprocess.run(["tmux", "send-keys", "-t", session, "/mem st", "Tab"], check=True)
        wait_for("/mem stats")
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        shown = wait_for("Memory of this bot process")
        assert "(only you can see this)" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, ":quit", "Enter"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_the_leak_hunt_reads_from_the_console_without_knowing_the_code(tmp_path):
    """The issue's own script: traffic, stats, two checkpoints around a leak, then inspect."""
    script = (
        ":traffic 2000\n/mem stats\n/mem checkpoint label:a\n:leak-objects 5000\n"
        "/mem checkpoint label:b compare_to:a\n/mem inspect type:LeakyWidget\n"
    )
    result = offline(
        tmp_path, script, DISCORD_MAX_MESSAGES="1000", DISCORD_MEMBERS_INTENT="true", DISCORD_MEMBER_CACHE="all"
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    caches = out[out.index("▸ Discord caches") :]
    # 2,000 visitors and you: the guild exists at READY, whose GUILD_CREATE (no chunking) carries no members.
    assert re.search(r"members\s+2,001", caches) and re.search(r"messages\s+1,000", caches)
    growing = out[out.index("Checkpoint 'b' stored") :]
    table = growing[growing.index("Growing types") :].splitlines()
    assert table[4].startswith("polly.offline.demo_leak.LeakyWidget") and "+5,000" in table[4]
    assert "polly.offline.demo_leak.leaked_widgets (list) → LeakyWidget" in out


def test_each_bot_object_leak_has_a_verb_and_polly_names_it(tmp_path):
    """The hunt of "What the bot keeps alive": tasks leaked over half an hour fire the alert that
    names their coroutine and where they wait; views, sessions and a survivor show in /mem tasks."""
    script = "".join(":leak-tasks 10\n:advance 10m\n" for _ in range(4))
    script += ":leak-views 30\n:leak-sessions 25\n:reload-leaky\n:reload-leaky\n:reload-leaky\n/mem tasks\n"
    result = offline(tmp_path, script)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    alert = out[out.index("🔴 Bot objects growing") :]
    assert alert.splitlines()[1].startswith("40 tasks running TaskPerMessage.remind_later: +30 in 30 min")
    assert "waiting at TaskPerMessage.remind_later (offline/bot_leaks.py:" in alert.splitlines()[1]
    census = out[out.index("■ What the bot keeps alive") :]
    assert re.search(r"TaskPerMessage\.remind_later\s+40\s", census)
    assert re.search(r"VoteButtons\s+30\s+30\s+0\s+30", census)
    assert "25 HTTP sessions (25 unclosed)" in census
    assert "polly.offline.leaky_reload.GreeterCog** (cog) x2" in census
    assert "held by `polly.offline.bot_leaks.HANDLERS (list) → greet.__self__ → GreeterCog`" in census


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (":traffic lots", "whole number of members"),
        (":leak-objects 0", "1 to 1,000,000"),
        (":leak-tasks 5000", "1 to 1,000 messages"),
        (":leak-sessions x", "whole number of sessions"),
    ],
)
def test_bad_counts_for_the_new_verbs_are_clear(tmp_path, line, message):
    result = offline(tmp_path, line + "\n")
    assert result.returncode == 1 and message in result.stdout


def test_the_endpoints_answer_while_the_console_waits_for_input(tmp_path):
    """The console reads stdin off the event loop: with a line pending, /health and /metrics answer."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = start_offline(
        tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'offline.db'}", HEALTH_PORT=str(port)
    )
    try:
        assert child.stdin is not None
        child.stdin.write("/mem stats\n")
        child.stdin.flush()  # stdin stays open: the console now waits for the next line
        answers: dict[str, tuple[int, str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(answers) < 2:
            for path in ("/health", "/metrics"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                        answers[path] = (response.status, response.read().decode())
                except OSError:
                    time.sleep(0.2)
        assert answers["/health"][0] == 200 and '"gateway_connected": true' in answers["/health"][1]
        assert answers["/metrics"][0] == 200 and "polly_memory_rss_bytes" in answers["/metrics"][1]
        stdout, _ = child.communicate(":quit\n", timeout=60)
        assert child.returncode == 0, stdout
        assert "Memory of this bot process" in stdout
    finally:
        child.kill()
