"""runbook links and tracker records on tickets

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-03 17:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runbook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("tracker", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("external_refs", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_ticket_channel", ["ticket_id", "channel"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_ticket_channel")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("external_refs")
        batch_op.drop_column("tracker")
        batch_op.drop_column("runbook_url")
