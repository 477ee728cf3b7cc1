"""Prometheus metrics of the webhook edge, on a registry the entry point passes in.

Labels are bounded: the source (a known one, or `unknown`), an outcome and a rejection reason; never a host, a
key or an instance, which would grow without limit.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

UNKNOWN_SOURCE = "unknown"

# `error` is a request that ended in a 500: a bug, and worth a graph of its own.
Outcome = Literal["accepted", "ignored", "rejected", "unavailable", "error"]
Reason = Literal["unauthorized", "too_large", "unsupported_media_type", "malformed", "invalid", "unknown_source"]


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "alertdesk_webhook_requests",
            "Webhook requests by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self._rejections = Counter(
            "alertdesk_webhook_rejections",
            "Webhook requests refused with a 4xx, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self._duration = Histogram(
            "alertdesk_webhook_duration_seconds",
            "Time from request to answer, publishing included.",
            ["source"],
            registry=registry,
        )

        self._children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}

    def request(self, source: str, outcome: Outcome, seconds: float) -> None:
        children = self._children.get((source, outcome))
        if children is None:  # labels() costs a lock and a dict build: once per series, not once per request
            children = self._requests.labels(source, outcome), self._duration.labels(source)
            self._children[(source, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def rejection(self, source: str, reason: Reason) -> None:
        self._rejections.labels(source=source, reason=reason).inc()
