"""create users

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from userbase.migrations import rerunnable
from userbase.models import UTCDateTime, case_key

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The *_key columns are never NULL (computed from NOT NULL columns), but MariaDB refuses a
    # NOT NULL clause on a generated column, so none of the engines gets one.
    rerunnable.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column(
            "username_key",
            case_key(32),
            sa.Computed("lower(username)", persisted=True),
            nullable=True,
        ),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column(
            "email_key", case_key(320), sa.Computed("lower(email)", persisted=True), nullable=True
        ),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username_key", name=op.f("uq_users_username_key")),
        sa.UniqueConstraint("email_key", name=op.f("uq_users_email_key")),
    )


def downgrade() -> None:
    rerunnable.drop_table("users")
