"""indexes for the admins' user filters

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from userbase.migrations import rerunnable

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rerunnable.create_index("ix_users_is_admin_id", "users", ["is_admin", "id"])
    rerunnable.create_index("ix_users_is_active_id", "users", ["is_active", "id"])
    rerunnable.create_index("ix_users_created_at", "users", ["created_at"])


def downgrade() -> None:
    rerunnable.drop_index("ix_users_created_at", table_name="users")
    rerunnable.drop_index("ix_users_is_active_id", table_name="users")
    rerunnable.drop_index("ix_users_is_admin_id", table_name="users")
