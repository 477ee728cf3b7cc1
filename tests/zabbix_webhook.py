"""Running deploy/senders/zabbix/media_alertdesk.yaml's script as Zabbix runs a webhook media type.

Zabbix resolves each parameter's macros (leaving unresolvable ones as their literal text), renders the message
template of the event's kind into `{ALERT.SUBJECT}`/`{ALERT.MESSAGE}`, and calls the script as the body of a
function of `value`, the parameters as a JSON string. Here the script runs in dukpy and in Node.js, with
tests/zabbix_shim.js standing in for Zabbix's objects and real HTTP underneath.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dukpy  # type: ignore[import-untyped]
import yaml

MEDIA_TYPE = Path(__file__).parents[1] / "deploy" / "senders" / "zabbix" / "media_alertdesk.yaml"
SHIM = (Path(__file__).parent / "zabbix_shim.js").read_text()
NODE_TRANSPORT = """
var childProcess = require('child_process');
function transport(method, url, headers, body) {
    var args = ['--silent', '--show-error', '--max-time', '10', '--request', method, '--data-binary', '@-',
                '--write-out', '\\n%{http_code}', '--url', url];
    headers.forEach(function (header) { args.push('--header', header); });
    var out = childProcess.execFileSync('curl', args, {input: body, encoding: 'utf8'});
    var cut = out.lastIndexOf('\\n');
    return [parseInt(out.slice(cut + 1), 10), out.slice(0, cut)];
}
"""


def media_type() -> dict[str, Any]:
    exported = yaml.safe_load(MEDIA_TYPE.read_text())["zabbix_export"]
    (media,) = exported["media_types"]
    return dict(media)


def zabbix_value(macros: Mapping[str, str], settings: Mapping[str, str]) -> str:
    """The `value` Zabbix hands the script: each parameter with its macros resolved (unresolvable ones stay
    literal), `{ALERT.SUBJECT}` and `{ALERT.MESSAGE}` being the media type's message template for the event."""

    def resolve(text: str, known: Mapping[str, str]) -> str:
        return re.sub(r"\{(\$?[A-Z][A-Z0-9_.]*)\}", lambda m: known.get(m[1], m[0]), text)

    media = media_type()
    if macros.get("EVENT.UPDATE.STATUS") == "1":
        mode = "UPDATE"
    else:
        mode = "PROBLEM" if macros.get("EVENT.VALUE") == "1" else "RECOVERY"
    (template,) = (t for t in media["message_templates"] if t["operation_mode"] == mode)
    alert = {
        "ALERT.SUBJECT": resolve(template["subject"], macros),
        "ALERT.MESSAGE": resolve(template["message"], macros),
    }
    params = {p["name"]: resolve(p.get("value", ""), {**macros, **alert}) for p in media["parameters"]}
    return json.dumps(params | dict(settings))


class JsError(Exception):
    """The script threw: Zabbix marks the alert failed and retries it."""


def run_in_dukpy(script: str, value: str) -> str:
    def transport(method: str, url: str, headers: list[str], body: str) -> list[Any]:
        names_values = (header.split(":", 1) for header in headers)
        request = urllib.request.Request(
            url, data=body.encode(), method=method, headers={n.strip(): v.strip() for n, v in names_values}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return [resp.status, resp.read().decode()]
        except urllib.error.HTTPError as exc:
            return [exc.code, exc.read().decode()]

    interpreter = dukpy.JSInterpreter()
    interpreter.export_function("transport", transport)
    code = f"{SHIM}\nfunction transport(m, u, h, b) {{ return call_python('transport', m, u, h, b); }}\n"
    try:
        return str(interpreter.evaljs(f"{code}(function (value) {{\n{script}\n}})(dukpy.value);", value=value))
    except dukpy.JSRuntimeError as exc:
        raise JsError(str(exc)) from None


def run_in_node(script: str, value: str, workdir: Path) -> str:
    program = workdir / "webhook.js"
    program.write_text(
        f"{SHIM}\n{NODE_TRANSPORT}\n"
        f"process.stdout.write(String((function (value) {{\n{script}\n}})(process.argv[2])));\n"
    )
    done = subprocess.run(["node", str(program), value], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise JsError(done.stderr)
    return done.stdout
