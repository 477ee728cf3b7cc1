"""nagios payloads → Alert. (placeholder, being written)"""

from collections.abc import Mapping
from typing import Any

from normalizers.schema import Alert, Envelope, Ignored


def normalize(body: Mapping[str, Any], envelope: Envelope) -> Alert | Ignored:
    raise NotImplementedError
