"""The README's console transcripts are what the bot prints now (figures masked): a change of the
bot's output fails here until `uv run python docs/readme_transcripts.py` writes them again."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT


def transcripts():
    spec = importlib.util.spec_from_file_location("readme_transcripts", REPO_ROOT / "docs" / "readme_transcripts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_transcripts"] = module
    spec.loader.exec_module(module)
    return module


TRANSCRIPTS = transcripts()
BLOCKS = TRANSCRIPTS.blocks(TRANSCRIPTS.README.read_text())


def test_the_readme_has_its_transcripts():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize(("transcript", "shown"), BLOCKS, ids=[t.script.splitlines()[0] for t, _ in BLOCKS])
def test_a_transcript_is_what_the_bot_prints_now(transcript, shown):
    pytest.importorskip("simcord")
    fresh = transcript.run()
    assert TRANSCRIPTS.masked(shown) == TRANSCRIPTS.masked(fresh), (
        "the README's transcript is stale: run `uv run python docs/readme_transcripts.py`"
    )


def test_masking_hides_figures_but_not_words():
    masked = TRANSCRIPTS.masked
    assert masked("RSS **72.3 MiB** · 10 fds, 0 ms ago") == masked("RSS **80.1 MiB** · 12 fds, 1.5 s ago")
    assert masked("pool 1/1 in use") != masked("pool 1/1 idle")
    assert masked("`▁▂█` x  ----") == masked("`██` x -")
    container = "▸ Container\ncgroup v1 · max none\nanon 1 MiB\n▸ RSS trend\n"
    assert masked(container) == masked("▸ Container\nnot in a memory cgroup\n▸ RSS trend\n")


def test_masking_keeps_a_type_name_after_a_figure_and_ignores_the_growing_types_order():
    masked = TRANSCRIPTS.masked
    # "+391\ndict": the figure ends at the line; "d" of "dict" is no unit of days.
    assert masked("function 1 +391\ndict 2 +384\n") != masked("function 1 +391\nlist 2 +384\n")
    table = "type  before  after  change\n----  ------  -----  ------\n{}```\n"
    rows = ["tuple  14,861  15,408  +547\n", "function  22,784  23,175  +391\n"]
    assert masked(table.format("".join(rows))) == masked(table.format("".join(reversed(rows))))
    assert masked(table.format(rows[0])) != masked(table.format(rows[1]))
