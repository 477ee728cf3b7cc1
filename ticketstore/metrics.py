"""What the store worker tells Prometheus: tickets opened and resolved, alert→ticket latency, dead letters."""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Container, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from normalizers.schema import Source, TicketCommand
from ticketstore.store import Applied

# Fine around 100 ms, the alert→ticket target: histogram_quantile interpolates linearly inside a bucket, so with
# 0.1 → 0.25 a tail just past 100 ms read as a p99 of 150-230 ms when the alerts' own p99 was ~93 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REPEAT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 45.0, 60.0, 120.0)  # up to the hold


class StoreMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.applied = Counter(
            "alertdesk_alerts_applied_total",
            "Alerts applied to tickets, by kind (problem, recovery, ...)",
            ["kind"],
            registry=registry,
        )
        self.duplicates = Counter(
            "alertdesk_alerts_duplicate_total",
            "Alerts skipped because their id was already applied (redelivery or client retry)",
            registry=registry,
        )
        self.opened = Counter(
            "alertdesk_tickets_opened_total", "Tickets opened, by severity", ["severity"], registry=registry
        )
        self.resolved = Counter(
            "alertdesk_tickets_resolved_total", "Tickets resolved, by severity", ["severity"], registry=registry
        )
        self.silenced = Counter(
            "alertdesk_alerts_silenced_total",
            "Problem alerts a maintenance window silenced, by source",
            ["source"],
            registry=registry,
        )
        for source in Source:
            self.silenced.labels(source.value)
        self.dead_letters = Counter(
            "alertdesk_dead_letters_total", "Commands that could never be applied", ["stage"], registry=registry
        )
        self.dead_letters.labels("store")  # the series exists from the start, so increase() sees the first one
        self.latency = Histogram(
            "alertdesk_alert_to_ticket_seconds",
            "From the webhook's arrival to the ticket change committed",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.repeat_latency = Histogram(
            "alertdesk_repeat_to_ticket_seconds",
            "Repeats a dedup worker held back (distributed mode): from the webhook's arrival to the count committed",
            buckets=REPEAT_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "alertdesk_store_batch_commands",
            "Ticket commands per store transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "alertdesk_store_batch_seconds",
            "Time to apply one store transaction, commit included (what the next batch waits for)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )

    def record(
        self,
        commands: Iterable[TicketCommand],
        results: Iterable[Applied],
        committed_at: datetime,
        repeats: Container[int] = (),
    ) -> list[float]:
        """Count one batch; each labelled series is touched once per batch, not once per alert.

        `repeats`: the `id()` of commands that are held repeats; their latency goes to `repeat_latency`. Returns
        the alert→ticket latencies it observed (seconds, repeats excluded), for a caller with a histogram of its own.
        """
        applied: Counter_[str] = Counter_()
        opened: Counter_[str] = Counter_()
        resolved: Counter_[str] = Counter_()
        silenced: Counter_[str] = Counter_()
        latencies: list[float] = []
        duplicates = dead = count = 0
        for cmd, result in zip(commands, results, strict=True):
            count += 1
            if result.dead_letter is not None:
                dead += 1
                continue
            duplicates += len(result.alert_ids) - result.new_alerts
            if result.new_alerts:
                applied[cmd.alert.kind.value] += result.new_alerts
                seconds = max((committed_at - cmd.first_received_at).total_seconds(), 0.0)
                if id(cmd) in repeats:
                    self.repeat_latency.observe(seconds)
                else:
                    latencies.append(seconds)
                    self.latency.observe(seconds)
            if result.opened and result.severity:
                opened[result.severity] += 1
            if result.resolved and result.severity:
                resolved[result.severity] += 1
            if result.silenced:
                silenced[cmd.alert.source.value] += result.new_alerts
        counted = (self.applied, applied), (self.opened, opened), (self.resolved, resolved), (self.silenced, silenced)
        for counter, counts in counted:
            for label, n in counts.items():
                counter.labels(label).inc(n)
        if duplicates:
            self.duplicates.inc(duplicates)
        if dead:
            self.dead_letters.labels("store").inc(dead)
        self.batch_size.observe(count)
        return latencies
