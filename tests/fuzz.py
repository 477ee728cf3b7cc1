"""Hypothesis strategies for webhook bodies that reach deep into each normalizer.

Random dictionaries fail at the first missing key and test nothing past it. These start from the real sample
payloads of `payloads/<source>/` and mutate them: values replaced by wrong types, huge or odd strings, NUL bytes,
unresolved macros, nested objects, other fields' values; keys removed or added from the source's own field names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PAYLOADS = Path(__file__).parent / "payloads"
SOURCES = ("nagios", "zabbix", "solarwinds")

# CI runs the same examples every time (a red build then means a change broke something, not a lucky draw);
# a developer's run explores new ones.
FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _bodies(source: str) -> list[dict[str, Any]]:
    """Every body object of a source's sample files (`.json` cases, `.jsonl` sequences)."""
    found: list[dict[str, Any]] = []
    for path in sorted((PAYLOADS / source).iterdir()):
        if path.suffix == ".json":
            candidates = [json.loads(path.read_text(encoding="utf-8"))]
        elif path.suffix == ".jsonl":
            candidates = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            continue
        for case in candidates:
            body = case.get("body", case) if isinstance(case, dict) else None
            if isinstance(body, dict) and body:
                found.append(body)
    return found


SAMPLES: dict[str, list[dict[str, Any]]] = {source: _bodies(source) for source in SOURCES}
FIELDS: dict[str, list[str]] = {
    source: sorted({key for body in bodies for key in body}) for source, bodies in SAMPLES.items()
}
VALUES: dict[str, list[Any]] = {
    source: sorted({v for body in bodies for v in body.values() if isinstance(v, str)})
    for source, bodies in SAMPLES.items()
}

PLACEHOLDERS = [
    "{EVENT.ID}",
    "{TRIGGER.ID}",
    "{HOST.NAME1}",
    "{$ZABBIX.URL}",
    "{ITEM.VALUE[1]}",
    "*UNKNOWN*",
    "$HOSTNAME$",
    "$SERVICESTATE$",
    "${N=Alerting;M=AlertObjectID}",
    "${N=SwisEntity;M=Caption}",
]
NUMBERISH = ["0", "1", "2", "5", "6", "-1", "01", " 1 ", "1.0", "1e3", "0x1F", "٣", "²", "１", "9" * 40, "NaN"]
DEEP_JSON_TEXT = "[" * 100_000 + "]" * 100_000
ODD_TEXT = ["", " ", "\t\r\n", "\x00", "a\x00b", "\ufeff", "\u202e", "é" * 300, "😀", "null", "[]", "{}", "&", "="]


@st.composite
def _edited(draw: st.DrawFn, value: Any, pool: list[Any]) -> Any:
    """A value near the original: same text with surroundings, another case, or another field's value."""
    text = value if isinstance(value, str) else ""
    return draw(
        st.sampled_from(
            [
                text.upper(),
                text.lower(),
                f"  {text}  ",
                text + "\x00",
                text * 3,
                text[: len(text) // 2],
            ]
        )
        | st.sampled_from(pool)
    )


def hostile_values() -> list[Any]:
    """A fixed list of what a field may hold when things go wrong, for sweeping every field of every sample."""
    return [
        *PLACEHOLDERS,
        *NUMBERISH,
        *ODD_TEXT,
        DEEP_JSON_TEXT,
        "W" * 70_000,
        None,
        True,
        0,
        -1,
        2**70,
        1.5,
        [],
        ["a"],
        {},
        {"tag": "a", "value": "b"},
    ]


def json_values(depth: int = 2) -> st.SearchStrategy[Any]:
    """Any JSON value, as senders get wrong: scalars of every type, nested arrays and objects."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40)
    )
    if depth == 0:
        return scalars
    inner = json_values(depth - 1)
    return scalars | st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)


def mutant(value: Any, pool: list[Any]) -> st.SearchStrategy[Any]:
    """What a field's value may become."""
    return st.one_of(
        _edited(value, pool),
        st.sampled_from(PLACEHOLDERS + NUMBERISH + ODD_TEXT),
        st.text(max_size=60),
        st.integers(min_value=200, max_value=70_000).map(lambda n: "W" * n),
        st.sampled_from([2, 100, 5_000, 100_000]).map(lambda n: "[" * n + "]" * n),  # JSON text nested deep
        json_values(),
    )


@st.composite
def bodies(draw: st.DrawFn, source: str) -> dict[str, Any]:
    """A sample body of `source` with a few fields changed, removed or added."""
    body = dict(draw(st.sampled_from(SAMPLES[source])))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        name = draw(st.sampled_from(sorted({*FIELDS[source], *body})) | st.text(max_size=12))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(mutant(body.get(name), VALUES[source]))
    return body


def form_bodies(source: str) -> st.SearchStrategy[bytes]:
    """Mutated sample bodies as a form: URL-encoded, or Orion's raw `key=value&` + CRLF dialect."""

    def encode(body: dict[str, Any], raw: bool) -> bytes:
        pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in body.items()]
        if raw:
            return "".join(f"{k}={v}&\r\n" for k, v in pairs).encode()
        return urlencode(pairs).encode()

    return st.builds(encode, bodies(source), st.booleans())


def json_bodies(source: str) -> st.SearchStrategy[bytes]:
    return bodies(source).map(lambda body: json.dumps(body).encode())


def raw_bodies(source: str) -> st.SearchStrategy[bytes]:
    """Any bytes a sender may post: real bodies, cut or spliced, and plain noise."""
    real = json_bodies(source) | form_bodies(source)
    return st.one_of(
        real,
        st.builds(lambda b, n: b[:n], real, st.integers(min_value=0, max_value=400)),
        st.builds(lambda b, noise: b + noise, real, st.binary(max_size=20)),
        st.binary(max_size=200),
        st.sampled_from([b"", b" \r\n", b"null", b"[]", b'"x"', b"1e999", b"{", b"\xef\xbb\xbf{}", b'{"a":"\\ud800"}']),
    )
