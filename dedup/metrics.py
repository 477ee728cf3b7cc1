"""What the dedup stage tells Prometheus: alerts in, commands out (their ratio is the fold ratio)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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
