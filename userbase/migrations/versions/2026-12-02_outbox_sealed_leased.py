"""outbox: sealed content wiped once sent, a stable Message-ID, lease owners, mails that gave up

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The bodies of unsent mails are sealed under USERBASE_SECRET_KEY (userbase/sealing.py): run
`userbase migrate` with the key the servers use. Bodies of sent mails are dropped.

Every step checks what is already there first: MariaDB commits DDL as it goes, so a run that was
interrupted leaves some steps done, and running `userbase migrate` again finishes the others.
"""

import json
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from userbase.models import UTCDateTime
from userbase.sealing import seal, unseal

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_INDEX = "ix_outbox_sent_at_next_attempt_at"
_NEW_INDEX = "ix_outbox_sent_at_gave_up_at_next_attempt_at"


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("outbox")}


def _indexes() -> set[str]:
    return {i["name"] or "" for i in sa.inspect(op.get_bind()).get_indexes("outbox")}


def upgrade() -> None:
    present = _columns()
    for column in (
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("gave_up_at", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(32), nullable=True),
    ):
        if column.name not in present:
            op.add_column("outbox", column)

    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer()),
        sa.column("sent_at", UTCDateTime()),
        sa.column("text_body", sa.Text()),
        sa.column("html_body", sa.Text()),
        sa.column("content", sa.Text()),
        sa.column("message_id", sa.String(255)),
    )
    bind = op.get_bind()
    if {"text_body", "html_body"} <= present:
        # Unsent mails only (a handful): sent ones lose their bodies with the columns. Once a
        # body column is gone, this step was done (its updates committed with that DROP).
        unsent = bind.execute(
            sa.select(outbox.c.id, outbox.c.text_body, outbox.c.html_body).where(
                outbox.c.sent_at.is_(None), outbox.c.content.is_(None)
            )
        ).all()
        for id_, text_body, html_body in unsent:
            content = seal(json.dumps({"text": text_body, "html": html_body}).encode())
            bind.execute(sa.update(outbox).where(outbox.c.id == id_).values(content=content))
    # One statement for any number of rows; unique to this run, like make_msgid's.
    run = secrets.token_hex(8)
    bind.execute(
        sa.update(outbox)
        .where(outbox.c.message_id.is_(None))
        .values(
            message_id=sa.literal("<outbox.")
            + sa.cast(outbox.c.id, sa.String())
            + sa.literal(f".{run}@userbase>")
        )
    )

    if _OLD_INDEX in _indexes():
        op.drop_index(_OLD_INDEX, table_name="outbox")
    present = _columns()
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("message_id", existing_type=sa.String(255), nullable=False)
        for name in ("text_body", "html_body"):
            if name in present:
                batch.drop_column(name)
    if _NEW_INDEX not in _indexes():
        op.create_index(_NEW_INDEX, "outbox", ["sent_at", "gave_up_at", "next_attempt_at"])


def downgrade() -> None:
    # Unsent mails get their bodies back in clear, as this revision's code expects them.
    if _NEW_INDEX in _indexes():
        op.drop_index(_NEW_INDEX, table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("text_body", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("html_body", sa.Text(), nullable=False, server_default=""))
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer()),
        sa.column("text_body", sa.Text()),
        sa.column("html_body", sa.Text()),
        sa.column("content", sa.Text()),
    )
    bind = op.get_bind()
    sealed = bind.execute(
        sa.select(outbox.c.id, outbox.c.content).where(outbox.c.content.is_not(None))
    ).all()
    for id_, content in sealed:
        bodies = json.loads(unseal(content))
        bind.execute(
            sa.update(outbox)
            .where(outbox.c.id == id_)
            .values(text_body=bodies["text"], html_body=bodies["html"])
        )
    with op.batch_alter_table("outbox") as batch:
        for name in ("content", "message_id", "gave_up_at", "lease_owner"):
            batch.drop_column(name)
    op.create_index(_OLD_INDEX, "outbox", ["sent_at", "next_attempt_at"])
