"""Settings: one pydantic-settings object, read from the environment (and `.env`)."""

import ipaddress
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

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

    # Sessions in use are bounded to what the pool can hand out (see database.py). No overflow
    # by default: an overflow connection is closed when it comes back and opened again for the
    # next burst, which cost 17% of the list's throughput at 100 connections (bench/ab.py).
    pool_size: int = Field(default=15, ge=1, le=200)
    max_overflow: int = Field(default=0, ge=0, le=200)
    pool_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: int = Field(default=5, ge=1)
    # PostgreSQL statement_timeout, MariaDB max_statement_time: the server cancels a statement
    # running longer and the request answers 503. 0 switches it off.
    statement_timeout_ms: int = Field(default=5000, ge=0)
    # A request that has not started its answer after this long gets 504 (see admission.py).
    # Above pool_timeout + statement_timeout, so those answer first with their precise 503.
    request_timeout: float = Field(default=15.0, gt=0)
    # On SIGTERM, in-flight requests get this long to finish (`userbase serve`); above
    # request_timeout, so every request ends by its own deadline first.
    shutdown_grace: int = Field(default=20, ge=0)
    # DATABASE_URL points at PgBouncer in transaction mode: no server-side prepared statements,
    # statement_timeout set per transaction, the connection budget left to PgBouncer
    # (docs/deployment.md). Not detected: through PgBouncer, PostgreSQL answers every query.
    pgbouncer: bool = False
    # SQLite: how long a writer waits for the lock before "database is locked".
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # OWASP Password Storage Cheat Sheet (2025): argon2id with m=19 MiB, t=2, p=1 is the minimum.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Each argon2 hash holds argon2_memory_kib and a core; bound them so a burst cannot exhaust RAM.
    # The CPUs this process may run on (taskset, cgroups' cpusets), not all of the machine's.
    hash_concurrency: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1)

    # Bearer tokens of POST /auth/token: opaque, stored as SHA-256, revocable at once. (The
    # JWT access tokens of /oauth/token are below.)
    token_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Tokens other services check (userbase/tokens/, docs/tokens.md); their signing keys'
    # private halves are sealed under secret_key (below). JWT access tokens (RFC 9068) are
    # short: services that check them locally see a revocation only when they expire. At most
    # 15 minutes.
    access_token_ttl_seconds: int = Field(default=300, ge=30, le=900)
    access_token_algorithm: Literal["ES256", "RS256"] = "ES256"
    # The `aud` of access tokens (what a resource server checks); default: public_url.
    token_audience: str | None = None
    # Refresh tokens: a sign-in through a client ends when none of its refresh tokens was
    # used for the idle time, and in any case after the absolute time.
    refresh_token_idle_seconds: int = Field(default=14 * 86400, ge=60)
    refresh_token_absolute_seconds: int = Field(default=60 * 86400, ge=60)
    # Cache-Control max-age of /.well-known/jwks.json.
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=3600)
    # The OpenID Connect provider (userbase/oidc/, docs/oidc.md). A browser sign-in on
    # userbase's pages gives single sign-on this long (Keycloak's "SSO Session Max" default is
    # 10 hours); the sign-ins of clients made through it end with it.
    browser_sign_in_seconds: int = Field(default=10 * 3600, ge=60)
    # A directory of Jinja2 templates that replace the package's (userbase/oidc/templates/)
    # file by file: an operator's own sign-in, consent and logout pages.
    templates_dir: Path | None = None

    # Second factors (userbase/mfa/, docs/mfa.md): the issuer authenticator apps show beside
    # the account, and whether admins must have one (without, they sign in only to enrol one).
    mfa_issuer: str = Field(default="userbase", min_length=1, max_length=64)
    require_mfa_for_admins: bool = False

    # Failed sign-ins within the window: per account, and (higher, for offices behind one NAT)
    # per client address. Past the limit: 429 until the window has passed.
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    login_account_limit: int = Field(default=10, ge=1)
    login_address_limit: int = Field(default=100, ge=1)
    # Sign-ups per client address per hour, and mails of any kind that requests may send one
    # recipient per hour (verification, email change, "no account"): anonymous work is bounded.
    signup_address_limit: int = Field(default=20, ge=1)
    mails_per_recipient_limit: int = Field(default=5, ge=1)
    # Sign-in from a device (browser or client) that signed in to the account before: it gets
    # its own failure count, so failures from elsewhere cannot lock the owner out (OWASP).
    device_cookie_days: int = Field(default=90, ge=1)
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For is believed.
    # Comma-separated, e.g. USERBASE_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # When set, the login throttle counts in Redis instead of the database.
    redis_url: SecretStr | None = None
    # Prefix of every Redis key we write, so several deployments can share one Redis.
    redis_namespace: str = "userbase"

    # Mail. With no SMTP URL, mails are written to the log (development mode).
    # smtp://user:password@host:587 (STARTTLS when offered, required with credentials),
    # smtps://user:password@host:465 (TLS from the start).
    smtp_url: str | None = None
    mail_from: str = "userbase <no-reply@localhost>"
    # Where links in mails point: the address people reach this service at.
    public_url: str = "http://localhost:8000"
    # Send the outbox from a background task of the server (else run `userbase send-mail`).
    mail_background: bool = True
    mail_poll_seconds: float = Field(default=2.0, gt=0)
    # Attempts before a mail gives up (visibly: `userbase check`, /readyz, /metrics; `userbase
    # resend-mail` queues it again). Back-off doubles from 5 s up to 10 min: 150 attempts span
    # about 24 hours of failures.
    mail_max_attempts: int = Field(default=150, ge=1)
    # Sent mails (their content already wiped) are deleted after this long: `userbase purge-mail`.
    mail_retention_days: int = Field(default=7, ge=1)
    # The key sealing what the database must not hold in clear (the links in queued mails, the
    # private signing keys). Any long random string; unset, a development key is used and
    # start-up warns. To change it: `USERBASE_SECRET_KEY=new userbase keys rotate` first
    # (docs/tokens.md).
    secret_key: SecretStr | None = Field(default=None, min_length=32)
    verify_token_ttl_seconds: int = Field(default=48 * 3600, ge=60)
    reset_token_ttl_seconds: int = Field(default=30 * 60, ge=60)
    require_verified_email: bool = False
    events_retention_days: int = Field(default=90, ge=1)

    # Every this many seconds a worker gives the allocator's free memory back to the system
    # (memory.py); 0 switches it off.
    memory_trim_seconds: float = Field(default=10.0, ge=0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # All request headers together; 16 KiB is Node.js's and h11's default limit.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    # Seconds a client has to send a request's line and headers (from the connection, or from
    # the request's first byte on a kept-alive one); past it, 408 and the connection is closed.
    # Clients send their headers at once; a slow-header client holds a connection this long.
    header_timeout: float = Field(default=10.0, gt=0)

    log_level: str = "info"

    # Operations (docs/operations.md): logs, metrics, CORS.
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True
    # FastAPI's native OpenTelemetry (traces, metrics, logs through the global providers you
    # configure). Off by default: even unconfigured, it looks the providers up on every request.
    opentelemetry: bool = False
    metrics_token: SecretStr | None = None
    # Comma-separated (or a JSON list); none by default, so browsers on other origins get no access.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _as_networks(cls, value: list[str]) -> list[str]:
        # Refused at start-up rather than at the first request; and written one way
        # ("10.1.2.3/8" is "10.0.0.0/8"), since uvicorn reads the same list (serving.py) and
        # takes a network with host bits set for a name that matches nothing.
        return [str(ipaddress.ip_network(entry, strict=False)) for entry in value]

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

    def summary(self, workers: int) -> list[tuple[str, str]]:
        """The settings that matter, as (name, value) pairs; passwords and tokens never shown."""
        redis = self.redis_url
        return [
            ("database", make_url(self.database_url).render_as_string(hide_password=True)),
            ("auto-migrate", "on" if self.should_auto_migrate else "off"),
            (
                "pool",
                f"{self.pool_size} + {self.max_overflow} overflow per worker, {workers} "
                f"worker(s), {self.pool_timeout:g} s timeout",
            ),
            (
                "argon2id",
                f"t={self.argon2_time_cost}, m={self.argon2_memory_kib} KiB, "
                f"p={self.argon2_parallelism}, {self.hash_concurrency} at once",
            ),
            (
                "logs",
                f"{self.log_format}, level {self.log_level}, access log "
                f"{'on' if self.access_log else 'off'}",
            ),
            ("second factor for admins", "required" if self.require_mfa_for_admins else "optional"),
            ("metrics token", "set" if self.metrics_token else "not set (GET /metrics is open)"),
            (
                "trusted proxies",
                ", ".join(self.trusted_proxies) or "none (X-Forwarded-For is ignored)",
            ),
            ("CORS origins", ", ".join(self.cors_origins) or "none"),
            (
                "redis",
                make_url(redis.get_secret_value()).render_as_string(hide_password=True)
                if redis
                else "not set",
            ),
        ]


@lru_cache
def get_settings() -> Settings:
    return Settings()
