"""Schema migrations (Alembic), run from code: ``cohort migrate`` and ``cohort serve --migrate``."""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from hub.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Model modules of every package, loaded by name: the hub owns migrations but may not import
# the packages above it (the dependency contract), and autogenerate needs all their tables.
MODEL_MODULES = (
    "hub.identity.models",
    "hub.realtime.models",
    "hub.notifications.models",
    "media.models",
    "ide.models",
    "payments.models",
    "catalog.models",
    "catalog.social_models",
    "rooms.models",
)


def hand_written(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Autogenerate filter: full-text search objects (FTS5 tables and their shadow tables,
    tsvector indexes) are written by hand in migrations and have no model; their names contain
    ``_fts``."""
    return not (name and "_fts" in name)


def load_models() -> None:
    """Import every package's models so the shared metadata knows all tables."""
    for module in MODEL_MODULES:
        importlib.import_module(module)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic reads main options through ConfigParser, which treats % specially.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database to ``revision`` on the hub's own engine."""
    config = alembic_config(db.url)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)
