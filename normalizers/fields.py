"""Reading string fields out of a decoded webhook body, collecting every fault before raising.

The three sources send only strings, paste unresolved macros literally, and treat a missing field and an empty
one alike; `Fields` encodes those habits once so each source module only says which names it wants.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from normalizers.schema import InvalidAlert

_PLACEHOLDER = re.compile(
    r"""^(?:
        \{[A-Z][A-Z0-9_.]*(?:\[[^\]]*\])?\}     # Zabbix {EVENT.ID}, {HOST.NAME1}
      | \{\$[A-Z0-9_.]+(?::[^}]*)?\}             # Zabbix user macro {$ZABBIX.URL} left undefined
      | \$[A-Z][A-Z0-9_]*\$                     # Nagios $HOSTNAME$ left unexpanded
      | \$\{N=[^}]*\}                           # Orion ${N=Alerting;M=AlertObjectID}
    )$""",
    re.VERBOSE,
)

T = TypeVar("T")


def without_nul(value: str) -> str:
    """NUL as U+FFFD, like an undecodable byte: PostgreSQL cannot store NUL in text, and would dead-letter the alert."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def is_placeholder(value: str) -> bool:
    """True for a macro the sender left unresolved, e.g. Zabbix's literal `{TRIGGER.ID}`.

    Every macro starts with `{` or `$`: other values (nearly all) skip the pattern, which runs on every field read.
    """
    value = value.strip()
    return value[:1] in ("{", "$") and bool(_PLACEHOLDER.match(value))


class Fields:
    """A view of a body's fields. Absent, empty and placeholder values all read as None.

    Faults are collected, not raised, so one 422 names every field at fault; call `check()` at the end.
    """

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = body
        self._errors: list[dict[str, Any]] = []

    def text(self, *names: str, required: bool = False) -> str | None:
        """The first of `names` holding a usable string, stripped."""
        placeholder: tuple[str, str] | None = None
        for name in names:
            if name not in self._body:
                continue
            value = self._body[name]
            if value is None:
                continue
            if not isinstance(value, str):
                self.error(name, f"must be a string, got {type(value).__name__}")
                return None
            value = without_nul(value.strip())
            if not value:
                continue
            if is_placeholder(value):
                placeholder = placeholder or (name, value)
                continue
            return value
        if required:
            if placeholder is not None:
                self.error(placeholder[0], f"unresolved macro {placeholder[1]}")
            else:
                self.error(names[0], "field required")
        return None

    def raw(self, name: str) -> Any:
        """The value as sent, for fields that are not strings (e.g. a tags object)."""
        return self._body.get(name)

    def choice(self, names: str | Iterable[str], vocabulary: Mapping[str, T], *, required: bool = False) -> T | None:
        """A field whose value must be one of `vocabulary` (compared case-insensitively)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        value = self.text(*names, required=required)
        if value is None:
            return None
        found = vocabulary.get(value)
        if found is None:
            found = next((v for k, v in vocabulary.items() if k.upper() == value.upper()), None)
        if found is None:
            present = next((n for n in names if n in self._body), names[0])
            allowed = ", ".join(vocabulary)
            self.error(present, f"{value!r} is not one of: {allowed}")
        return found

    def error(self, name: str, msg: str) -> None:
        self._errors.append({"loc": [name], "msg": msg})

    def check(self) -> None:
        if self._errors:
            raise InvalidAlert(self._errors)
