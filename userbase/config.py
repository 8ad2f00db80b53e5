"""Settings: one pydantic-settings object, read from the environment (and `.env`)."""

import os
from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The embedded default: a SQLite file in the working directory, so the tutorial's
# `uvicorn main:app --reload` works with nothing set up.
DEFAULT_DATABASE_URL = "sqlite:///./userbase.db"


class Settings(BaseSettings):
    """Everything configurable. `DATABASE_URL` keeps the tutorial's name; the rest is USERBASE_*."""

    model_config = SettingsConfigDict(env_prefix="USERBASE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=AliasChoices("DATABASE_URL", "USERBASE_DATABASE_URL"),
    )
    # None means: migrate on start-up on SQLite (embedded, nobody else to do it), never on servers.
    auto_migrate: bool | None = None

    # Sessions in use are bounded to what the pool can hand out (see database.py).
    pool_size: int = Field(default=10, ge=1, le=200)
    max_overflow: int = Field(default=5, ge=0, le=200)
    pool_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: int = Field(default=5, ge=1)
    # PostgreSQL statement_timeout, MariaDB max_statement_time: the server cancels a statement
    # running longer and the request answers 503. 0 switches it off.
    statement_timeout_ms: int = Field(default=5000, ge=0)
    # A request that has not started its answer after this long gets 504 (see deadline.py).
    # Above pool_timeout + statement_timeout, so those answer first with their precise 503.
    request_timeout: float = Field(default=15.0, gt=0)
    # On SIGTERM, in-flight requests get this long to finish (`userbase serve`); above
    # request_timeout, so every request ends by its own deadline first.
    shutdown_grace: int = Field(default=20, ge=0)
    # SQLite: how long a writer waits for the lock before "database is locked".
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # OWASP Password Storage Cheat Sheet (2025): argon2id with m=19 MiB, t=2, p=1 is the minimum.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Each argon2 hash holds argon2_memory_kib and a core; bound them so a burst cannot exhaust RAM.
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # All request headers together; 16 KiB is Node.js's and h11's default limit.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)

    log_level: str = "info"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def max_sessions(self) -> int:
        """Sessions that may be open at once: exactly the connections the pool can hand out."""
        return self.pool_size + self.max_overflow


@lru_cache
def get_settings() -> Settings:
    return Settings()
