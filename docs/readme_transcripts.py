"""The README's console transcripts, produced by running the bot: `uv run python docs/readme_transcripts.py`
rewrites every block between `<!-- transcript: ... -->` and `<!-- /transcript -->` with a fresh run;
`tests/test_readme_transcripts.py` fails when a block no longer matches what the bot prints (figures,
times and widths masked, since they differ from run to run).

A marker names the folder to run in, the command and the input lines (`\\n`-separated, as `printf`
takes them):

    <!-- transcript: . | python -m bot --offline | /mem stats\\n:advance 3m\\n -->
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- transcript: (.+?) -->\n)````text\n(.*?)````\n(<!-- /transcript -->)", re.S)
# The same every run: the instance's name (else the host's), no database or settings of this machine.
ENVIRONMENT = {"INSTANCE_NAME": "polly-offline"}
OWN_SETTINGS = ("DB_", "DATABASE_", "DISCORD_", "MEMORY_", "HEALTH_", "INSTANCE_", "FLEET_", "ALERT_", "POLLY_")


@dataclass(frozen=True)
class Transcript:
    folder: str
    command: str
    script: str

    @classmethod
    def parse(cls, marker: str) -> Transcript:
        folder, command, script = (part.strip() for part in marker.split(" | ", 2))
        return cls(folder, command, script.replace("\\n", "\n"))

    def run(self) -> str:
        """What the command prints for the script (stdout, then what it logged), as a reader sees it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
        env.update(ENVIRONMENT, PYTHONPATH=str(REPO_ROOT))
        with tempfile.TemporaryDirectory(prefix="polly-transcript-") as scratch:
            # an example bot runs in a copy of its folder: its database and files stay out of the repository
            cwd = REPO_ROOT if self.folder == "." else Path(scratch) / "bot"
            if self.folder != ".":
                shutil.copytree(REPO_ROOT / self.folder, cwd, ignore=shutil.ignore_patterns("*.db", "__pycache__"))
            result = subprocess.run(
                [sys.executable, *self.command.split()[1:]],
                input=self.script,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
        if result.returncode != 0:
            raise RuntimeError(f"{self.command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result.stdout.rstrip("\n") + "\n"


# "≤ " marks a free part cut to fit the resident pages (polly.rss_breakdown): it comes and goes with them.
# A unit is on the figure's line and a word of its own ("+391\ndict" is a figure and a type name).
FIGURE = re.compile(r"(?:≤ )?\d[\d,.]*(?: ?(?:ms|s|min|h|d|MiB|GiB|KiB|%)(?![A-Za-z]))?")
# The growing types of a checkpoint: which grew most changes with a few objects either way.
GROWING_TYPES = re.compile(r"(^type +before +after +change\n-[- ]+\n)((?:(?!```).*\n)+)", re.MULTILINE)


def masked(text: str) -> str:
    """The text with what differs between runs masked: figures with their units, times, paths,
    sparklines and bars, the widths of table columns (they follow the figures), and the order of
    the growing types."""
    text = re.sub(r"/tmp/\S+", "<path>", text)
    # The container's field says what this machine's cgroup is (v1, v2, none): not the bot's doing.
    text = re.sub(r"(▸ Container\n)(?:(?!▸ ).*\n)+", r"\1<this machine's memory cgroup>\n", text)
    text = GROWING_TYPES.sub(lambda m: m.group(1) + "".join(sorted(m.group(2).splitlines(keepends=True))), text)
    text = FIGURE.sub("#", text)
    text = re.sub(r"[▁▂▃▄▅▆▇█░]+", "~", text)
    text = re.sub(r"-{2,}", "-", text)
    text = re.sub(r" {2,}", " ", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def blocks(readme: str) -> list[tuple[Transcript, str]]:
    """Each transcript block of the README: what it runs, and what it shows now."""
    return [(Transcript.parse(m.group(2)), m.group(3)) for m in BLOCK.finditer(readme)]


def regenerate(readme: str) -> str:
    def fresh(m: re.Match[str]) -> str:
        output = Transcript.parse(m.group(2)).run()
        return f"{m.group(1)}````text\n{output}````\n{m.group(4)}"

    return BLOCK.sub(fresh, readme)


def main() -> int:
    text = README.read_text()
    updated = regenerate(text)
    README.write_text(updated)
    sys.stdout.write(f"{len(blocks(updated))} transcript(s) written into {README.name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
