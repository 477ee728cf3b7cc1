"""The architecture as the imports show it: ticketstore's core imports neither its API nor its escalation side.

A newcomer reads `ticketstore/` as three rooms; this keeps them so: api → core and escalation → core, never back,
and every package says in its docstring what it is for.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "alertdesk",
    "ingest",
    "normalizers",
    "dedup",
    "ticketstore",
    "ticketstore.api",
    "ticketstore.escalation",
    "ticketstore.trackers",
    "ticketstore.console",
]


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: str, *, leave_out: tuple[str, ...] = ()) -> list[Path]:
    return [
        p
        for p in sorted((ROOT / folder).rglob("*.py"))
        if "migrations" not in p.parts and not any(part in p.relative_to(ROOT).parts for part in leave_out)
    ]


def offending(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{p.relative_to(ROOT)} imports {name}"
        for p in paths
        for name in imports_of(p)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_the_core_imports_neither_the_api_nor_escalation_nor_trackers_nor_the_console() -> None:
    core = modules_under("ticketstore", leave_out=("api", "escalation", "trackers", "console"))
    assert core, "no core modules found"
    forbidden = ("ticketstore.api", "ticketstore.escalation", "ticketstore.trackers", "ticketstore.console")
    assert offending(core, forbidden) == []


def test_the_console_sits_on_top_of_the_api_and_nothing_imports_it() -> None:
    """console → api → core: the console reuses the API's queries; the API and escalation never import it."""
    below = modules_under("ticketstore/api") + modules_under("ticketstore/escalation")
    assert offending(below, ("ticketstore.console",)) == []
    assert offending(modules_under("ticketstore/console"), ("ticketstore.escalation",)) == []


def test_the_api_and_escalation_import_the_core_and_not_each_other() -> None:
    assert offending(modules_under("ticketstore/api"), ("ticketstore.escalation", "ticketstore.trackers")) == []
    assert offending(modules_under("ticketstore/escalation"), ("ticketstore.api", "ticketstore.trackers")) == []


def test_trackers_sit_beside_escalation_and_never_import_the_api() -> None:
    """Trackers use the core and escalation's outbox; nothing below them imports them."""
    trackers = modules_under("ticketstore/trackers")
    assert trackers, "no tracker modules found"
    assert offending(trackers, ("ticketstore.api",)) == []


def test_the_stages_below_the_store_do_not_import_it() -> None:
    lower = modules_under("normalizers") + modules_under("ingest") + modules_under("dedup")
    assert offending(lower, ("ticketstore", "alertdesk")) == []


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_says_what_it_is_for(name: str) -> None:
    doc = importlib.import_module(name).__doc__
    assert doc and len(doc.strip()) > 40, f"{name}/__init__.py needs a docstring saying what the package is for"
