"""Registries at an older schema revision, for tests of what a migration does to existing rows."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from lorag.common.db import MIGRATIONS_DIR, make_engine


def registry_at(path: Path, revision: str, *statements: tuple[str, dict]):
    """A SQLite registry file migrated up to ``revision`` only, with ``statements`` (SQL text and
    parameters) run on it; returns its URL (``Database(url)`` then migrates it to head)."""
    from sqlalchemy import text

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        with engine.begin() as conn:
            for sql, params in statements:
                conn.execute(text(sql), params)
    finally:
        engine.dispose()
    return url
