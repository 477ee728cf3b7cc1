"""What the dedup stage tells Prometheus: alerts in, commands out (their ratio is the fold ratio)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter

from normalizers.schema import Alert, TicketCommand


class DedupMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts_in = Counter(
            "alertdesk_dedup_alerts_total", "Alerts taken by the dedup stage", ["source"], registry=registry
        )
        self.commands_out = Counter(
            "alertdesk_dedup_commands_total",
            "Ticket commands the dedup stage handed on (alerts/commands = fold ratio)",
            ["kind"],
            registry=registry,
        )

    def record(self, alerts: Sequence[Alert], commands: Sequence[TicketCommand]) -> None:
        """Count a window's alerts and the commands they folded into: one increment per label, not per alert."""
        for source, count in Tally(alert.source.value for alert in alerts).items():
            self.alerts_in.labels(source).inc(count)
        for kind, count in Tally(cmd.alert.kind.value for cmd in commands).items():
            self.commands_out.labels(kind).inc(count)
