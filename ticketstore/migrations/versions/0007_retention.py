"""indexes on the columns that point at a ticket, so deleting old tickets (retention) never scans a table

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 18:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_previous", ["previous_ticket_id"], unique=False)
    with op.batch_alter_table("ticket_episodes", schema=None) as batch_op:
        batch_op.create_index("ix_episodes_ticket", ["ticket_id"], unique=False)
    # notifications: 0005's ix_notifications_ticket_channel (ticket_id, channel) serves deletes by ticket already


def downgrade() -> None:
    with op.batch_alter_table("ticket_episodes", schema=None) as batch_op:
        batch_op.drop_index("ix_episodes_ticket")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_previous")
