"""ORM tables, typed with `Mapped[...]`, and the constraint naming convention migrations rely on."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# The models' defaults use it; domain modules take it from here too (one clock: clock.py).
from userbase.clock import utcnow as utcnow

# Explicit names, so a migration can drop or alter a constraint on every engine and an
# IntegrityError can be mapped to the field it concerns (errors.py reads these names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USERNAME_MAX = 32
EMAIL_MAX = 320  # RFC 5321: 64 (local part) + 1 + 255 (domain)
DISPLAY_NAME_MAX = 100
USER_AGENT_MAX = 200
# Every id column is a 32-bit integer on every engine: a larger number cannot name a row (and
# PostgreSQL refuses to compare one with an integer column).
MAX_ID = 2_147_483_647


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the engine stores.

    SQLite and MariaDB have no time zone in their DATETIME: we store UTC there and mark it so
    on the way back; PostgreSQL's timestamptz is converted to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "postgresql":
            return super().result_processor(dialect, coltype)

        # psycopg returns timestamptz aware, in the session's time zone; database.py sets the
        # session's to UTC, which psycopg gives as datetime.UTC itself. One plain function per
        # value instead of TypeDecorator's two (a page has 100 of them), and in UTC no work.
        def to_utc(value: datetime | None) -> datetime | None:
            if value is None or value.tzinfo is UTC:
                return value
            return value.astimezone(UTC)

        return to_utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def case_key(length: int) -> String:
    """A column type compared byte by byte, so prefix ranges and uniqueness ignore locale rules."""
    return (
        String(length)
        .with_variant(String(length, collation="C"), "postgresql")
        .with_variant(String(length, collation="utf8mb4_bin"), "mysql", "mariadb")
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A model's Core table, for hot paths that read plain rows or insert without the ORM."""
    return Base.metadata.tables[model.__tablename__]


class User(Base):
    __tablename__ = "users"
    # Case-insensitive uniqueness is the database's job: the *_key columns are computed by the
    # database itself (lower()), and their unique constraints reject "Alice" after "alice"
    # whatever path the row came in by, and whatever race the requests ran.
    __table_args__ = (
        UniqueConstraint("username_key"),
        UniqueConstraint("email_key"),
        # For the admins' filters on the id-ordered list: (flag, id) serves
        # "WHERE is_admin AND id > :after ORDER BY id LIMIT n" as one index range.
        Index("ix_users_is_admin_id", "is_admin", "id"),
        Index("ix_users_is_active_id", "is_active", "id"),
        Index("ix_users_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX))
    username_key: Mapped[str] = mapped_column(
        case_key(USERNAME_MAX), Computed("lower(username)", persisted=True), nullable=True
    )
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    email_key: Mapped[str] = mapped_column(
        case_key(EMAIL_MAX), Computed("lower(email)", persisted=True), nullable=True
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX))
    is_active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Bumped by every ORM update; an UPDATE carries "AND version = :seen" (optimistic locking).
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Token(Base):
    """A bearer token. Only its SHA-256 is stored: a leaked table does not leak sessions."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # None for a sign-in of an OAuth client (client_id set): it has no opaque token, only
    # refresh tokens (RefreshToken) and JWT access tokens naming it as their `sid`.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_address: Mapped[str | None] = mapped_column(String(45))  # longest IPv6 text form
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))
    # The OAuth client the user signed in through (userbase/tokens/), else None. Deleting the
    # client ends its sign-ins.
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    # Loaded only when asked for (the sessions list): a lazy load would be a query per row.
    client: Mapped["OAuthClient | None"] = relationship(lazy="raise")
    # For a client's sign-in made by the OpenID Connect provider (userbase/oidc/): the browser
    # sign-in it came through. Ending that one (logout) ends this one with it.
    browser_sign_in_id: Mapped[int | None] = mapped_column(
        ForeignKey("tokens.id", ondelete="CASCADE"), index=True
    )


class BrowserSignIn(Base):
    """A sign-in on userbase's own pages (userbase/oidc/): the cookie that gives single sign-on.

    Its row of `tokens` (no opaque token, no client) is what the sessions API lists; ending
    it ends this, the client sign-ins made through it, and their pending codes. Only the
    SHA-256 of the cookie is stored.
    """

    __tablename__ = "browser_sign_ins"

    sign_in_id: Mapped[int] = mapped_column(
        ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # OpenID Connect's auth_time: when the user last proved who they are (max_age, prompt=login).
    authenticated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How (OpenID Connect amr values, space-separated): "pwd" for the password; a second factor
    # adds its own.
    methods: Mapped[str] = mapped_column(String(100), default="pwd")


class AuthorizationCode(Base):
    """An authorization code (userbase/oidc/): single use, short-lived, bound to its client,
    redirect URI and PKCE challenge. Only the SHA-256 of the code is stored."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    browser_sign_in_id: Mapped[int] = mapped_column(
        ForeignKey("tokens.id", ondelete="CASCADE"), index=True
    )
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(500))
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The client sign-in its exchange made: a second use of the code ends it (RFC 6749 4.1.2).
    issued_sign_in_id: Mapped[int | None] = mapped_column(
        ForeignKey("tokens.id", ondelete="SET NULL"), index=True
    )


class Consent(Base):
    """The scopes a user granted a third-party client on the consent page (userbase/oidc/)."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(500))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SigningKey(Base):
    """A key that signs the JWTs userbase issues (userbase/tokens/keys.py).

    The private key is a PKCS#8 PEM sealed under USERBASE_SECRET_KEY (sealing.py); the public JWK is
    what /.well-known/jwks.json publishes while `publish_until` is ahead (or unset).
    """

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a newer key of its algorithm replaced it: it signs nothing more, and stays
    # published until every token it signed has expired.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    publish_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OAuthClient(Base):
    """An application registered to get tokens (userbase/tokens/clients.py)."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the secret (256 random bits, like bearer tokens); None for a public client.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    is_public: Mapped[bool] = mapped_column(default=False)
    first_party: Mapped[bool] = mapped_column(default=False)
    # Space-separated lists (the wire format of OAuth's scope parameter); URIs have no spaces.
    redirect_uris: Mapped[str] = mapped_column(Text)
    grant_types: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Where RP-initiated logout may send the browser back to (userbase/oidc/), space-separated.
    post_logout_redirect_uris: Mapped[str | None] = mapped_column(Text)


class RefreshToken(Base):
    """One refresh token of a client's sign-in (a Token row): its family is the sign-in's.

    Only the SHA-256 is stored. A used one is kept (used_at set) so that its reuse is
    recognised: RFC 9700 section 4.14 then revokes the whole family.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    sign_in_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the access tokens it gets may carry (a refresh may ask for less, never more).
    scope: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MfaFactor(Base):
    """A user's second factor (userbase/mfa/): a TOTP authenticator (RFC 6238), one a user.

    The secret is kept only sealed (sealing.py). Until `confirmed_at` is set (a first code
    from the app) it is an enrolment under way and signs nothing in. `last_used_step` is the
    time step of the last code accepted: a code of that step or an earlier one is a replay.
    """

    __tablename__ = "mfa_factors"
    __table_args__ = (UniqueConstraint("user_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_step: Mapped[int | None] = mapped_column()


class RecoveryCode(Base):
    """One single-use recovery code of a user (userbase/mfa/): only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MfaChallenge(Base):
    """A sign-in whose password was right, waiting for its second factor: the `mfa_token`
    (only its SHA-256 is stored). Single use, short-lived, spent by too many wrong codes.

    It keeps what the sign-in it finishes needs: the OAuth client signed in through (or None)
    and the trusted device that counted its failures (devices.py, or None).
    """

    __tablename__ = "mfa_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    failures: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[int | None] = mapped_column()


class Passkey(Base):
    """A user's passkey (userbase/mfa/passkeys.py): a WebAuthn discoverable credential.

    The credential id is up to 1023 bytes (WebAuthn Level 3, 5.8.3): too long for a unique
    index on MariaDB (3072 bytes a key) as text, so it is found by its SHA-256
    (`credential_key`). `sign_count` is the authenticator's counter at the last use: an
    assertion whose counter does not go past it (once either is non-zero) is refused.
    """

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_key: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # WebAuthn's user.id of the account at registration: an assertion's userHandle must match.
    user_handle: Mapped[bytes] = mapped_column(LargeBinary)
    # An unsigned 32-bit counter (WebAuthn 6.1.1): beyond a signed Integer.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    transports: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasskeyChallenge(Base):
    """A WebAuthn challenge handed out (only its SHA-256 is stored): single use, short-lived,
    for one purpose, and bound to what asked for it (the user, the browser's CSRF cookie or
    the waiting sign-in's mfa_token, as a SHA-256 in `binding`)."""

    __tablename__ = "passkey_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    binding: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ThrottleEvent(Base):
    """One counted event (a failed sign-in, a mail sent on request) under a throttle key."""

    __tablename__ = "throttle_events"
    __table_args__ = (Index("ix_throttle_events_key_occurred_at", "key", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(case_key(400))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionToken(Base):
    """A single-use token sent by mail: verify an address, or reset a forgotten password.

    Like bearer tokens, only the SHA-256 is stored; `kind` keeps one kind from serving as another.
    """

    __tablename__ = "action_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # For email verification: the address the token verifies (it may have changed since).
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMail(Base):
    """A mail to send, written in the same transaction as the change that caused it.

    Its content (the links in it carry tokens) is kept only sealed under the server key
    (sealing.py) and wiped once the mail is sent. A mail is due when unsent, not given up, and
    its `next_attempt_at` has passed; a sender holding it has set `lease_owner` and moved
    `next_attempt_at` to the end of its lease.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_sent_at_gave_up_at_next_attempt_at",
            "sent_at",
            "gave_up_at",
            "next_attempt_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(EMAIL_MAX))
    subject: Mapped[str] = mapped_column(String(200))
    # Sealed JSON {"text", "html"}; NULL once sent.
    content: Mapped[str | None] = mapped_column(Text)
    # Set once when queued and sent with every attempt, so receivers can drop copies.
    message_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500))


class SecurityEvent(Base):
    """The audit trail: who did what to which account, from where. Never a password or token."""

    __tablename__ = "security_events"
    __table_args__ = (Index("ix_security_events_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    # No foreign key: the trail of a deleted user outlives the user.
    user_id: Mapped[int | None] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column()
    client_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_MAX))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # How the action came in: "api" (an HTTP request) or "cli" (an operator's command).
    channel: Mapped[str] = mapped_column(String(10), server_default="api")
    # Internal detail (e.g. why a sign-in failed); never shown to the signed-in user.
    detail: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
