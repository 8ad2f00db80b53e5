"""Settings: one pydantic-settings object, read from the environment (and `.env`)."""

import json
import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    # SQLite: how long a writer waits for the lock before "database is locked".
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # OWASP Password Storage Cheat Sheet (2025): argon2id with m=19 MiB, t=2, p=1 is the minimum.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Each argon2 hash holds argon2_memory_kib and a core; bound them so a burst cannot exhaust RAM.
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    log_level: str = "info"

    # Operations (docs/operations.md): logs, metrics, CORS, Redis.
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True
    metrics_token: SecretStr | None = None
    # Comma-separated (or a JSON list); none by default, so browsers on other origins get no access.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    redis_url: SecretStr | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

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
