"""covering indexes for the console's dashboard figures

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_tickets_first_seen_figures": [
        "first_seen",
        "acknowledged_at",
        "resolved_at",
        "respond_by",
        "resolve_by",
        "response_breached",
        "resolution_breached",
    ],
    "ix_tickets_resolved_at": ["resolved_at"],
    "ix_tickets_last_seen_check": ["last_seen", "host", "service", "occurrences"],
    "ix_tickets_status_severity_group": ["status", "severity", "assigned_group"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "tickets", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="tickets")
