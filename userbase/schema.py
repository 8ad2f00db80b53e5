"""The database schema's revision: read it, compare it with the code's, upgrade it (Alembic)."""

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


class SchemaBehind(RuntimeError):
    """The database is not at the revision this code needs."""


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("userbase") / "migrations"))
    # env.py runs on this engine instead of building its own from a URL.
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    command.upgrade(alembic_config(engine), "head")


def ensure_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Upgrade (embedded default) or refuse to start when the schema is not at head."""
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return
    if auto_migrate:
        upgrade_to_head(engine)
        return
    raise SchemaBehind(
        f"The database schema is at revision {current or 'none'}, this version needs {head}: "
        "run `userbase migrate`, then start again."
    )
