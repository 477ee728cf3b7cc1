"""The settings the webhook edge needs, as one immutable object built by the entry point."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from normalizers.schema import Source


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """`tokens` holds only the sources that have one; a source without a token is open (see `open_sources`)."""

    tokens: Mapping[Source, str] = field(default_factory=dict)
    max_body_bytes: int = 1_048_576
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if self.retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        empty = sorted(source.value for source, token in self.tokens.items() if not token)
        if empty:
            # An empty token would let a request without any token through: leave the source out instead.
            raise ValueError(f"empty token for {', '.join(empty)}: leave the source out to keep it open")
        object.__setattr__(self, "tokens", MappingProxyType(dict(self.tokens)))
