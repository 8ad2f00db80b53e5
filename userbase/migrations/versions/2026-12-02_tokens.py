"""tokens other services can check: signing keys, OAuth clients, refresh tokens

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from userbase.models import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # MariaDB commits DDL as it goes: a re-run after an interruption finds part of it done,
    # so every step first looks whether it is there already.
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    if "signing_keys" not in tables:
        op.create_table(
            "signing_keys",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("kid", sa.String(64), nullable=False),
            sa.Column("alg", sa.String(10), nullable=False),
            sa.Column("private_pem", sa.Text(), nullable=False),
            sa.Column("public_jwk", sa.Text(), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("retired_at", UTCDateTime(), nullable=True),
            sa.Column("publish_until", UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
            sa.UniqueConstraint("kid", name=op.f("uq_signing_keys_kid")),
        )
    if "oauth_clients" not in tables:
        op.create_table(
            "oauth_clients",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("client_id", sa.String(64), nullable=False),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("secret_hash", sa.String(64), nullable=True),
            sa.Column("is_public", sa.Boolean(), nullable=False),
            sa.Column("first_party", sa.Boolean(), nullable=False),
            sa.Column("redirect_uris", sa.Text(), nullable=False),
            sa.Column("grant_types", sa.String(200), nullable=False),
            sa.Column("scope", sa.String(500), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("secret_rotated_at", UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
            sa.UniqueConstraint("client_id", name=op.f("uq_oauth_clients_client_id")),
        )
    token_columns = {c["name"]: c for c in inspector.get_columns("tokens")}
    token_fks = {fk["name"] for fk in inspector.get_foreign_keys("tokens")}
    token_indexes = {index["name"] for index in inspector.get_indexes("tokens")}
    # SQLite: one batch (copy-the-table) operation, all or nothing; the others alter in place,
    # a statement at a time, hence a check before each.
    with op.batch_alter_table("tokens") as batch:
        if not token_columns["token_hash"]["nullable"]:
            batch.alter_column("token_hash", existing_type=sa.String(64), nullable=True)
        if "client_id" not in token_columns:
            batch.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        if "fk_tokens_client_id_oauth_clients" not in token_fks:
            batch.create_foreign_key(
                op.f("fk_tokens_client_id_oauth_clients"),
                "oauth_clients",
                ["client_id"],
                ["id"],
                ondelete="CASCADE",
            )
        if "ix_tokens_client_id" not in token_indexes:
            batch.create_index(op.f("ix_tokens_client_id"), ["client_id"])
    if "refresh_tokens" not in tables:
        op.create_table(
            "refresh_tokens",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("sign_in_id", sa.Integer(), nullable=False),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("scope", sa.String(500), nullable=False),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("expires_at", UTCDateTime(), nullable=False),
            sa.Column("used_at", UTCDateTime(), nullable=True),
            sa.ForeignKeyConstraint(
                ["sign_in_id"],
                ["tokens.id"],
                name=op.f("fk_refresh_tokens_sign_in_id_tokens"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
            sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        )
    if "refresh_tokens" not in tables or "ix_refresh_tokens_sign_in_id" not in {
        index["name"] for index in inspector.get_indexes("refresh_tokens")
    }:
        op.create_index(op.f("ix_refresh_tokens_sign_in_id"), "refresh_tokens", ["sign_in_id"])


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.execute(sa.text("DELETE FROM tokens WHERE token_hash IS NULL"))
    with op.batch_alter_table("tokens") as batch:
        # The foreign key first: MariaDB will not drop an index a foreign key uses.
        batch.drop_constraint(op.f("fk_tokens_client_id_oauth_clients"), type_="foreignkey")
        batch.drop_index(op.f("ix_tokens_client_id"))
        batch.drop_column("client_id")
        batch.alter_column("token_hash", existing_type=sa.String(64), nullable=False)
    op.drop_table("oauth_clients")
    op.drop_table("signing_keys")
