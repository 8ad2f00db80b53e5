"""the OpenID Connect provider: browser sign-ins, authorization codes, consents, logout URIs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from userbase.migrations import rerunnable
from userbase.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tokens_fk(column: str, ondelete: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["tokens.id"], name=op.f(f"fk_{table}_{column}_tokens"), ondelete=ondelete
    )


def upgrade() -> None:
    rerunnable.add_column(
        "oauth_clients", sa.Column("post_logout_redirect_uris", sa.Text(), nullable=True)
    )
    inspector = sa.inspect(op.get_bind())
    token_columns = {c["name"] for c in inspector.get_columns("tokens")}
    token_fks = {fk["name"] for fk in inspector.get_foreign_keys("tokens")}
    token_indexes = {index["name"] for index in inspector.get_indexes("tokens")}
    # SQLite: one batch (copy-the-table) operation, all or nothing; the others alter in place,
    # a statement at a time, hence a check before each (as in 0007).
    with op.batch_alter_table("tokens") as batch:
        if "browser_sign_in_id" not in token_columns:
            batch.add_column(sa.Column("browser_sign_in_id", sa.Integer(), nullable=True))
        if "fk_tokens_browser_sign_in_id_tokens" not in token_fks:
            batch.create_foreign_key(
                op.f("fk_tokens_browser_sign_in_id_tokens"),
                "tokens",
                ["browser_sign_in_id"],
                ["id"],
                ondelete="CASCADE",
            )
        if "ix_tokens_browser_sign_in_id" not in token_indexes:
            batch.create_index(op.f("ix_tokens_browser_sign_in_id"), ["browser_sign_in_id"])
    rerunnable.create_table(
        "browser_sign_ins",
        sa.Column("sign_in_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cookie_hash", sa.String(64), nullable=False),
        sa.Column("authenticated_at", UTCDateTime(), nullable=False),
        sa.Column("methods", sa.String(100), nullable=False),
        _tokens_fk("sign_in_id", "CASCADE", "browser_sign_ins"),
        sa.PrimaryKeyConstraint("sign_in_id", name=op.f("pk_browser_sign_ins")),
        sa.UniqueConstraint("cookie_hash", name=op.f("uq_browser_sign_ins_cookie_hash")),
    )
    rerunnable.create_table(
        "authorization_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("browser_sign_in_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("code_challenge_method", sa.String(10), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("issued_sign_in_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_authorization_codes_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        _tokens_fk("browser_sign_in_id", "CASCADE", "authorization_codes"),
        _tokens_fk("issued_sign_in_id", "SET NULL", "authorization_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorization_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_authorization_codes_code_hash")),
    )
    for column in ("client_id", "browser_sign_in_id", "issued_sign_in_id"):
        rerunnable.create_index(
            op.f(f"ix_authorization_codes_{column}"), "authorization_codes", [column]
        )
    rerunnable.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(500), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_consents_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_consents_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("user_id", "client_id", name=op.f("uq_consents_user_id")),
    )
    rerunnable.create_index(op.f("ix_consents_client_id"), "consents", ["client_id"])


def downgrade() -> None:
    rerunnable.drop_table("consents")
    rerunnable.drop_table("authorization_codes")
    rerunnable.drop_table("browser_sign_ins")
    # The browser sign-ins and what was signed in through them: rows this schema cannot tell.
    op.execute(sa.text("DELETE FROM tokens WHERE browser_sign_in_id IS NOT NULL"))
    op.execute(sa.text("DELETE FROM tokens WHERE token_hash IS NULL AND client_id IS NULL"))
    with op.batch_alter_table("tokens") as batch:
        batch.drop_constraint(op.f("fk_tokens_browser_sign_in_id_tokens"), type_="foreignkey")
        batch.drop_index(op.f("ix_tokens_browser_sign_in_id"))
        batch.drop_column("browser_sign_in_id")
    rerunnable.drop_column("oauth_clients", "post_logout_redirect_uris")
