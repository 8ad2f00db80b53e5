"""The database schema's revision: the code's (SCHEMA_HEAD), the database's, and the upgrade.

A server checks the revision at every start (readiness.py) but imports Alembic only to migrate:
the revision this code needs is SCHEMA_HEAD (tests/test_schema.py checks it is Alembic's head),
and the database's is one SELECT. Alembic's modules would otherwise stay in every worker's memory
(~10 MB, docs/performance.md).
"""

from collections.abc import Callable
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in userbase/migrations/versions/: a new migration updates it.
SCHEMA_HEAD = "0010"


def alembic_config(engine: Engine) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("userbase") / "migrations"))
    # env.py runs on this engine instead of building its own from a URL.
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    """The head of the migration scripts, as Alembic reads it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None before the first migration."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        # One row on a linear history (ours is).
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_to_head(
    engine: Engine, *, on_revision: Callable[[str, str], None] | None = None
) -> None:
    """Apply the pending revisions one by one, each in its own transaction (where the database
    has transactional DDL); `on_revision(revision, title)` is told as each one starts."""
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(engine)
    pending = ScriptDirectory.from_config(config).iterate_revisions(
        "heads", current_revision(engine) or "base"
    )
    for script in reversed(list(pending)):
        if on_revision is not None:
            on_revision(script.revision, script.doc)
        command.upgrade(config, script.revision)
