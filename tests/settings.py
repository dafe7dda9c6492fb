"""The one way tests build settings: no .env, a SQLite file in the test's folder, overrides on top."""

from __future__ import annotations

from pathlib import Path

from polly.config import Settings, load_settings


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'polly.db'}"}
    values.update(overrides)
    return load_settings(env_file=None, **values)


# Shaped like a bot token (id, timestamp, HMAC joined by dots) so start-up accepts it; not a real one.
FAKE_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.GAbCdE.not-a-real-token-only-its-shape"
