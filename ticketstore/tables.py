"""The database schema (SQLAlchemy Core). Alembic migrations under `migrations/` create and evolve it.

One partial unique index — one active ticket per `dedup_key` — is the last guard against a double open, whatever
the code above it does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect

from normalizers.schema import FIELD_LIMITS as LIMIT

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

ACTIVE_STATUSES = ("open", "in_progress", "waiting")  # a ticket in these is THE active ticket of its key
_ACTIVE = text(f"status IN ({', '.join(repr(s) for s in ACTIVE_STATUSES)})")

tickets = Table(
    "tickets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dedup_key", String(LIMIT["dedup_key"]), nullable=False),
    Column("source", String(32), nullable=False),
    Column("instance", String(64)),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("host", String(LIMIT["host"]), nullable=False),
    Column("host_display", String(LIMIT["host_display"])),
    Column("service", String(LIMIT["service"])),
    Column("address", String(LIMIT["address"])),
    Column("contact", String(LIMIT["contact"])),
    Column("severity", String(16), nullable=False),
    Column("peak_severity", String(16), nullable=False),
    Column("priority", String(4), nullable=False),
    Column("status", String(16), nullable=False),
    Column("suppressed", Boolean, nullable=False, default=False),  # by the source's downtime or a window
    Column("downtime", Boolean, nullable=False, default=False),  # the source's own downtime/suppression
    Column("maintenance_window_id", Id),  # the maintenance window silencing it (§8); None: none
    Column("held_opened", Boolean, nullable=False, default=False),  # opened in a window: `opened` not sent yet
    Column("flapping", Boolean, nullable=False, default=False),
    Column("occurrences", Integer, nullable=False, default=0),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("acknowledged_by", String(255)),
    Column("acknowledged_at", UtcDateTime()),
    Column("resolved_at", UtcDateTime()),
    Column("closed_at", UtcDateTime()),
    Column("assigned_group", String(255)),
    Column("assignee", String(255)),
    Column("escalation_level", Integer, nullable=False, default=0),
    Column("next_escalation_at", UtcDateTime()),  # when the next escalation step is due (None: no step left)
    Column("respond_by", UtcDateTime()),
    Column("resolve_by", UtcDateTime()),
    Column("response_breached", Boolean, nullable=False, default=False),
    Column("resolution_breached", Boolean, nullable=False, default=False),
    Column("paused_since", UtcDateTime()),  # suppressed or waiting since; SLA clocks stand still
    Column("paused_seconds", Float, nullable=False, default=0.0),
    Column("previous_ticket_id", Id, ForeignKey("tickets.id")),
    Column("episode_id", String(LIMIT["episode_id"])),  # the source's id of the episode this ticket follows now
    Column("last_state_ok", Boolean),  # the latest state the source reported (flapping settles on it)
    Column("last_state_change", UtcDateTime()),
    Column("source_refs", JSON, nullable=False, default=dict),
    Column("tags", JSON, nullable=False, default=dict),
    Column("runbook_url", Text),
    Column("tracker", String(64)),  # the policy's tracker that mirrors this ticket
    Column("external_refs", JSON, nullable=False, default=dict),  # tracker name -> remote key
    Index("ix_tickets_one_active_per_key", "dedup_key", unique=True, sqlite_where=_ACTIVE, postgresql_where=_ACTIVE),
    Index("ix_tickets_key_id", "dedup_key", "id"),
    Index("ix_tickets_status_id", "status", "id"),
    Index("ix_tickets_next_escalation", "next_escalation_at"),
    Index("ix_tickets_respond_by", "respond_by"),
    Index("ix_tickets_resolve_by", "resolve_by"),
    Index("ix_tickets_maintenance", "maintenance_window_id"),
    Index("ix_tickets_previous", "previous_ticket_id"),  # retention deletes tickets a newer one may point at
    Index("ix_tickets_flapping", "flapping", postgresql_where=text("flapping"), sqlite_where=text("flapping")),
    sqlite_autoincrement=True,  # ticket numbers are never reused
)

history = Table(
    "ticket_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(LIMIT["actor"])),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_history_ticket", "ticket_id", "id"),
)

episodes = Table(
    "ticket_episodes",
    metadata,
    Column("dedup_key", String(512), primary_key=True),
    Column("episode_id", String(64), primary_key=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Index("ix_episodes_ticket", "ticket_id"),
)

processed_alerts = Table(
    "processed_alerts",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("ticket_id", Id),  # None: applied, but nothing to attach it to (a recovery for an unknown key)
    Column("kind", String(16), nullable=False),
    Column("processed_at", UtcDateTime(), nullable=False),
    Index("ix_processed_at", "processed_at"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ticket_id", Id, ForeignKey("tickets.id"), nullable=False),
    Column("event", String(32), nullable=False),  # opened, escalated, severity_raised, sla_breached, resolved
    Column("level", Integer, nullable=False, default=0),
    Column("channel", String(128), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("payload", Text, nullable=False),  # the ticket as it was when the event happened (JSON)
    Column("status", String(16), nullable=False, default="pending"),  # pending, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_until", UtcDateTime()),
    Column("sent_at", UtcDateTime()),
    Column("last_error", Text),
    Index("ux_notifications_key_channel", "idempotency_key", "channel", unique=True),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    Index("ix_notifications_ticket_channel", "ticket_id", "channel"),  # tracker calls: earlier ones first
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("alert_id", String(36), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload", Text, nullable=False),
)

maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(255)),  # shell patterns; None: any
    Column("instance", String(255)),
    Column("host", String(255)),
    Column("service", String(255)),
    Column("dedup_key", String(255)),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime()),  # None: a standing recurring window
    Column("recurrence", JSON),  # {"days": [...], "start": "02:00", "end": "04:00"} in the policy's zone
    Column("comment", Text, nullable=False),
    Column("created_by", String(LIMIT["actor"]), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("ended_by", String(LIMIT["actor"])),
    Column("ended_at", UtcDateTime()),  # ended early
    Index("ix_maintenance_windows_ends_at", "ends_at"),
    sqlite_autoincrement=True,
)
# --- the console's people (CONTRACT §6): accounts, sessions, failed sign-ins ----------------------------------

users = Table(
    "users",
    metadata,
    Column("name", String(LIMIT["actor"]), primary_key=True),
    Column("role", String(16), nullable=False),  # viewer, operator
    Column("password_hash", String(255), nullable=False),  # argon2id, with its parameters and salt
    Column("created_at", UtcDateTime(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 of the cookie: a database dump signs nobody in
    Column("user_name", String(LIMIT["actor"]), nullable=False),
    Column("role", String(16), nullable=False),  # the role at sign-in; accounts re-read it on each request
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_sessions_user", "user_name"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(300), primary_key=True),  # "name:alice" or "addr:192.0.2.7"
    Column("failures", Integer, nullable=False),
    Column("last_at", UtcDateTime(), nullable=False),
)

# the console's "anything changed?" poll reads max(last_seen): an index answers it without a scan
Index("ix_tickets_last_seen", tickets.c.last_seen)

# The dashboard's figures read these indexes alone (covering: no row of the wide table is visited), so a 30-day
# dashboard reads the period's slice of narrow index entries, and the all-time figures a narrow index, not the table.
c = tickets.c
Index(
    "ix_tickets_first_seen_figures",
    c.first_seen,
    c.acknowledged_at,
    c.resolved_at,
    c.respond_by,
    c.resolve_by,
    c.response_breached,
    c.resolution_breached,
)
Index("ix_tickets_resolved_at", c.resolved_at)
Index("ix_tickets_last_seen_check", c.last_seen, c.host, c.service, c.occurrences)
Index("ix_tickets_status_severity_group", c.status, c.severity, c.assigned_group)
del c
