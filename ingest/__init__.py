"""The webhook edge: monitoring systems POST here; alerts leave through a `Publisher` once durable."""

from ingest.accesslog import RedactingAccessLogger
from ingest.auth import open_sources
from ingest.config import IngestConfig
from ingest.errors import json_errors
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.receiver import webhook_routes

__all__ = [
    "IngestConfig",
    "IngestMetrics",
    "Publisher",
    "RedactingAccessLogger",
    "json_errors",
    "open_sources",
    "webhook_routes",
]
