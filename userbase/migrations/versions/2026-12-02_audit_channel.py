"""the audit trail records the channel an event came through (api, cli)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from userbase.migrations import rerunnable

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    rerunnable.add_column(
        "security_events",
        sa.Column("channel", sa.String(length=10), nullable=False, server_default="api"),
    )


def downgrade() -> None:
    rerunnable.drop_column("security_events", "channel")
