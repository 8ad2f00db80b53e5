"""second factors: TOTP authenticators, recovery codes, sign-ins waiting for a second factor

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from userbase.migrations import rerunnable
from userbase.models import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    rerunnable.create_table(
        "mfa_factors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("confirmed_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_step", sa.Integer(), nullable=True),
        _user_fk("mfa_factors"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_factors")),
        sa.UniqueConstraint("user_id", "kind", name=op.f("uq_mfa_factors_user_id")),
    )
    rerunnable.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        _user_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    rerunnable.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    rerunnable.create_table(
        "mfa_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.Integer(), nullable=True),
        _user_fk("mfa_challenges"),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.id"],
            name=op.f("fk_mfa_challenges_client_id_oauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_challenges")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mfa_challenges_token_hash")),
    )
    rerunnable.create_index(op.f("ix_mfa_challenges_user_id"), "mfa_challenges", ["user_id"])
    rerunnable.create_index(op.f("ix_mfa_challenges_client_id"), "mfa_challenges", ["client_id"])
    rerunnable.create_index(op.f("ix_mfa_challenges_expires_at"), "mfa_challenges", ["expires_at"])


def downgrade() -> None:
    rerunnable.drop_table("mfa_challenges")
    rerunnable.drop_table("recovery_codes")
    rerunnable.drop_table("mfa_factors")
