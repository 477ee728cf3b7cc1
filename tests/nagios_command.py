"""Running deploy/senders/nagios/alertdesk.cfg's commands the way Nagios Core 4 runs a notification command.

Nagios pastes each `$MACRO$` into the command line as raw text (after stripping `illegal_macro_output_chars`
from the outputs and acknowledgement macros), then runs the line with /bin/sh; with enable_environment_macros=1
it also exports every macro as `NAGIOS_<MACRO>`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

NAGIOS_CFG = Path(__file__).parents[1] / "deploy" / "senders" / "nagios" / "alertdesk.cfg"
# Nagios's default illegal_macro_output_chars, and the macros it strips them from (base/utils.c, macros.c).
ILLEGAL_MACRO_OUTPUT_CHARS = "`~$&|'\"<>"
CLEANED_MACROS = frozenset(
    {"HOSTOUTPUT", "SERVICEOUTPUT", "LONGHOSTOUTPUT", "LONGSERVICEOUTPUT", "HOSTPERFDATA", "SERVICEPERFDATA"}
    | {"HOSTACKAUTHOR", "HOSTACKCOMMENT", "SERVICEACKAUTHOR", "SERVICEACKCOMMENT"}
)


def nagios_objects(kind: str) -> dict[str, dict[str, str]]:
    """`define <kind> { directive value ... }` blocks of the shipped file, by name."""
    objects = {}
    for body in re.findall(rf"^define\s+{kind}\s*\{{(.*?)^\}}", NAGIOS_CFG.read_text(), re.M | re.S):
        directives = dict(line.strip().split(None, 1) for line in body.splitlines() if line.strip())
        objects[directives[f"{kind}_name"]] = directives
    return objects


def nagios_resources(url: str, token: str, workdir: Path) -> dict[str, str]:
    """resource.cfg as its comment says: $USER1$ holds the script, $USER21$ the URL, $USER22$ the token file."""
    token_file = workdir / "alertdesk.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o400)
    return {"USER1": str(NAGIOS_CFG.parent), "USER21": url, "USER22": str(token_file)}


def nagios_clean(name: str, value: str, illegal: str) -> str:
    return value.translate({ord(c): None for c in illegal}) if name in CLEANED_MACROS else value


def substitute_nagios_macros(command_line: str, macros: Mapping[str, str], illegal: str) -> str:
    """What Nagios does before running a command: `$MACRO$` → value (unknown or invalid here → empty), `$$` → `$`."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        return "$" if not name else nagios_clean(name, macros.get(name, ""), illegal)

    return re.sub(r"\$([A-Z0-9_]*)\$", value, command_line)


def run_nagios_command(
    command: str, macros: Mapping[str, str], *, illegal: str = ILLEGAL_MACRO_OUTPUT_CHARS, environment: bool = False
) -> subprocess.CompletedProcess[str]:
    line = substitute_nagios_macros(nagios_objects("command")[command]["command_line"], macros, illegal)
    env = dict(os.environ)
    if environment:  # enable_environment_macros=1: every macro as NAGIOS_<MACRO>, cleaned the same way
        env |= {f"NAGIOS_{k}": nagios_clean(k, v, illegal) for k, v in macros.items() if not k.startswith("USER")}
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True, timeout=60)
