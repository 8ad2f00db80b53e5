"""the audit trail records the channel an event came through (api, cli)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # MariaDB commits DDL as it goes: a re-run after an interruption finds the column there.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("security_events")}
    if "channel" not in columns:
        op.add_column(
            "security_events",
            sa.Column("channel", sa.String(length=10), nullable=False, server_default="api"),
        )


def downgrade() -> None:
    op.drop_column("security_events", "channel")
