"""What a process tells Prometheus about its RabbitMQ side, labelled by stage (ingest, dedup, store) only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CONFIRM_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class BrokerMetrics:
    """One process, one stage: the metrics are created with the stage label already bound."""

    def __init__(self, registry: CollectorRegistry, stage: str) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, ["stage"], registry=registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["stage"], registry=registry)

        self.received = counter("alertdesk_broker_received_total", "Messages taken from partition queues").labels(stage)
        self.published = counter("alertdesk_broker_published_total", "Messages confirmed by the broker").labels(stage)
        self.publish_failures = counter(
            "alertdesk_broker_publish_failures_total", "Publishes refused, unconfirmed in time, or cut off"
        ).labels(stage)
        self.dead_lettered = counter(
            "alertdesk_broker_dead_lettered_total", "Messages sent to the dead-letter queue with their reason"
        ).labels(stage)
        self.retries = counter(
            "alertdesk_broker_retries_total", "Windows retried in-process after a transient failure"
        ).labels(stage)
        self.fenced = counter(
            "alertdesk_broker_fenced_total", "Messages dropped from a window because their channel died"
        ).labels(stage)
        self.connected = gauge("alertdesk_broker_connected", "1 while the broker session is up").labels(stage)
        self.partitions = gauge(
            "alertdesk_broker_partitions_held", "Partition queues this worker consumes (owned and taken over)"
        ).labels(stage)
        self.queue_depth = gauge(
            "alertdesk_broker_queue_messages", "Ready messages waiting in the partition queues this worker holds"
        ).labels(stage)
        self.confirm_seconds = Histogram(
            "alertdesk_broker_confirm_seconds",
            "From publish to the broker's confirm",
            ["stage"],
            buckets=CONFIRM_BUCKETS,
            registry=registry,
        ).labels(stage)
        self.lag_seconds = Histogram(
            "alertdesk_consumer_lag_seconds",
            "From the webhook's arrival to this stage having handled the alert (received → applied for the store)",
            ["stage"],
            buckets=LAG_BUCKETS,
            registry=registry,
        ).labels(stage)
