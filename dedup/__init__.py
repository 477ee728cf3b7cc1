"""Grouping repeated alerts of one problem: the fold, and (distributed mode) its RabbitMQ worker."""

from dedup.fold import fold
from dedup.metrics import DedupMetrics

__all__ = ["DedupMetrics", "fold"]
