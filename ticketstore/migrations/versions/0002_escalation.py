"""escalation deadlines and notification outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:52:47.720342
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ux_notifications_key_channel", ["idempotency_key", "channel"], unique=True)

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_escalation_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tickets_next_escalation", ["next_escalation_at"], unique=False)
        batch_op.create_index("ix_tickets_resolve_by", ["resolve_by"], unique=False)
        batch_op.create_index("ix_tickets_respond_by", ["respond_by"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_respond_by")
        batch_op.drop_index("ix_tickets_resolve_by")
        batch_op.drop_index("ix_tickets_next_escalation")
        batch_op.drop_column("next_escalation_at")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ux_notifications_key_channel")
        batch_op.drop_index("ix_notifications_due")

    op.drop_table("notifications")
