"""The sender templates of deploy/senders/, run as each monitoring system runs them, against a live `alertdesk run`.

Nagios: the command definitions get their macros substituted as Nagios does, then run in a real shell.
Zabbix: the media type's script runs in dukpy and in Node.js, with a stand-in for Zabbix's objects doing real
HTTP. SolarWinds: the action bodies get Orion's variables pasted in raw, then are posted as Orion posts them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.nagios_command import nagios_objects, nagios_resources, run_nagios_command
from tests.process import AlertdeskProcess
from tests.zabbix_webhook import MEDIA_TYPE, JsError, media_type, run_in_dukpy, run_in_node, zabbix_value

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
SENDERS = ROOT / "deploy" / "senders"
PAYLOADS = Path(__file__).parent / "payloads"
TOKENS = {"nagios": "n4g10s-7c1e9f", "zabbix": "zbx-52b7aa0d", "solarwinds": "0r10n-e8d2c4"}


@pytest.fixture(scope="module")
def alertdesk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertdeskProcess]:
    env = {f"ALERTDESK_{source.upper()}_TOKEN": token for source, token in TOKENS.items()}
    proc = AlertdeskProcess(tmp_path_factory.mktemp("senders"), env).start()
    yield proc
    proc.stop(signal.SIGKILL)


def lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def only_ticket(alertdesk: AlertdeskProcess, dedup_key: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"dedup_key": dedup_key})
    found = get(f"{alertdesk.url}/api/tickets?{query}")["tickets"]
    assert len(found) == 1, found
    return dict(get(f"{alertdesk.url}/api/tickets/{found[0]['id']}"))


# --- Nagios -----------------------------------------------------------------------------------------------------


@pytest.fixture
def nagios_macros(alertdesk: AlertdeskProcess, tmp_path: Path) -> Callable[[dict[str, str]], dict[str, str]]:
    resources = nagios_resources(f"{alertdesk.url}/webhooks/nagios", TOKENS["nagios"], tmp_path)
    return lambda notification: {**resources, **notification}


def test_nagios_contact_uses_the_shipped_commands() -> None:
    commands = nagios_objects("command")
    contact = nagios_objects("contact")["alertdesk"]
    assert contact["service_notification_commands"] in commands
    assert contact["host_notification_commands"] in commands
    assert {"notify-service-by-alertdesk-env", "notify-host-by-alertdesk-env"} <= commands.keys()


def test_nagios_service_problem_repeat_ack_recovery_through_the_shell(
    alertdesk: AlertdeskProcess, nagios_macros: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    problem, repeat, ack, recovery = lines(PAYLOADS / "nagios" / "sender-checkout-http.jsonl")
    statuses = []
    for notification in (problem, problem, repeat, ack, recovery):  # the first one twice: curl's retry, say
        done = run_nagios_command("notify-service-by-alertdesk", nagios_macros(notification))
        assert done.returncode == 0, done.stderr
        statuses.append(only_ticket(alertdesk, "nagios:web-prod-03/HTTP /checkout")["status"])

    ticket = only_ticket(alertdesk, "nagios:web-prod-03/HTTP /checkout")
    assert statuses == ["open", "open", "open", "in_progress", "resolved"]
    assert ticket["occurrences"] == 2
    assert ticket["acknowledged_by"] == "Jeanne Dupont"
    assert ticket["severity"] == "critical"
    assert ticket["address"] == "10.20.4.13"
    # What Nagios left of the output after stripping its illegal characters, and the long output unescaped.
    assert ticket["description"] == (
        "HTTP CRITICAL: HTTP/1.1 503 Service Unavailable - string Order placed not found on "
        "https://shop.example.com/checkout?step=2cart=1 - 1843 bytes in 0.412 second response time\n"
        "upstream 10.20.4.21:8080 refused the connection\nupstream 10.20.4.22:8080 answered html503/html"
    )
    assert ticket["source_refs"]["problem_id"] == "48213"


def test_nagios_every_character_but_a_quote_survives_the_command_line(
    alertdesk: AlertdeskProcess, nagios_macros: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    """An admin who emptied illegal_macro_output_chars: `&`, `=`, `%`, `"`, `$`, backquotes, non-ASCII all arrive."""
    (problem,) = lines(PAYLOADS / "nagios" / "sender-hard-characters.jsonl")
    for _ in range(2):  # the same notification twice: its non-ASCII Idempotency-Key is hashed, and still stable
        done = run_nagios_command("notify-service-by-alertdesk", nagios_macros(problem), illegal="")
        assert done.returncode == 0, done.stderr

    ticket = only_ticket(alertdesk, "nagios:srv-lyon-02/Température salle serveur")
    assert ticket["occurrences"] == 1
    assert (
        ticket["description"]
        == problem["SERVICEOUTPUT"] + "\nseuils: warn=30;crit=35\nsource=SNMP|OID .1.3.6.1.4.1.318"
    )
    assert ticket["host_display"] == "Serveur de fichiers Lyon"
    assert ticket["severity"] == "warning"


@pytest.mark.parametrize("command", ["notify-service-by-alertdesk", "notify-service-by-alertdesk-env"])
def test_nagios_notes_and_action_urls_reach_source_refs(
    alertdesk: AlertdeskProcess, nagios_macros: Callable[[dict[str, str]], dict[str, str]], command: str
) -> None:
    """The service's notes_url/action_url (with `&` and `=` in them) and its host's, as the object defines them."""
    (problem,) = lines(PAYLOADS / "nagios" / "sender-hard-characters.jsonl")
    service = f"Links {command}"
    links = {
        "SERVICENOTESURL": "https://wiki.example.net/display/OPS/Temp?room=B2&rack=4",
        "SERVICEACTIONURL": "https://grafana.example.net/d/temp?var-host=srv-lyon-02&from=now-6h",
        "HOSTNOTESURL": "https://cmdb.example.net/ci/srv-lyon-02",
        "HOSTACTIONURL": "",  # not defined on the host: Nagios substitutes nothing
    }
    macros = nagios_macros({**problem, "SERVICEDESC": service, **links})
    done = run_nagios_command(command, macros, environment=command.endswith("-env"))
    assert done.returncode == 0, done.stderr

    refs = only_ticket(alertdesk, f"nagios:srv-lyon-02/{service}")["source_refs"]
    assert refs["notes_url"] == links["SERVICENOTESURL"]
    assert refs["action_url"] == links["SERVICEACTIONURL"]
    assert refs["host_notes_url"] == links["HOSTNOTESURL"]
    assert "host_action_url" not in refs


def test_nagios_environment_macros_carry_quotes_typed_by_users(
    alertdesk: AlertdeskProcess, nagios_macros: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    down, downtime, up = lines(PAYLOADS / "nagios" / "sender-host-downtime.jsonl")
    seen = []
    for notification in (down, downtime, up):
        done = run_nagios_command("notify-host-by-alertdesk-env", nagios_macros(notification), environment=True)
        assert done.returncode == 0, done.stderr
        ticket = only_ticket(alertdesk, "nagios:db-paris-01")
        seen.append((ticket["status"], ticket["suppressed"]))

    assert seen == [("open", False), ("open", True), ("resolved", False)]
    history = only_ticket(alertdesk, "nagios:db-paris-01")["history"]
    suppressed = [(h["actor"], h["detail"]) for h in history if h["kind"] == "suppressed"]
    assert suppressed == [("Marc O'Neill", 'Swap of the RAID controller: don\'t power-cycle, "rack 4" & $PATH stays')]


def test_nagios_wrong_token_fails_the_command(
    alertdesk: AlertdeskProcess, nagios_macros: Callable[[dict[str, str]], dict[str, str]], tmp_path: Path
) -> None:
    (problem,) = lines(PAYLOADS / "nagios" / "sender-hard-characters.jsonl")
    (tmp_path / "wrong.token").write_text("not-the-token\n")
    done = run_nagios_command(
        "notify-service-by-alertdesk", {**nagios_macros(problem), "USER22": str(tmp_path / "wrong.token")}
    )
    assert done.returncode == 2
    assert "401" in done.stderr
    assert "not-the-token" not in done.stderr + done.stdout


# --- Zabbix -----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["duktape", "node"])
def run_webhook(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    script = media_type()["script"]
    if request.param == "duktape":
        return lambda value: run_in_dukpy(script, value)
    return lambda value: run_in_node(script, value, tmp_path)


def test_zabbix_problem_retry_escalation_ack_and_recovery(
    alertdesk: AlertdeskProcess, run_webhook: Callable[[str], str], request: pytest.FixtureRequest
) -> None:
    runtime = request.node.callspec.params["run_webhook"]
    settings = {"alertdesk_url": f"{alertdesk.url}/webhooks/zabbix/{runtime}", "alertdesk_token": TOKENS["zabbix"]}
    problem, escalation, ack, recovery = lines(PAYLOADS / "zabbix" / "sender-replication-lag.jsonl")
    key = f"zabbix@{runtime}:trigger/31877"

    statuses = []
    for event in (problem, problem, escalation, ack, recovery):  # the problem twice: a Zabbix retry attempt
        assert run_webhook(zabbix_value(event, settings)) == "OK"
        ticket = only_ticket(alertdesk, key)
        statuses.append((ticket["status"], ticket["occurrences"]))

    assert statuses == [("open", 1), ("open", 1), ("open", 2), ("in_progress", 2), ("resolved", 2)]
    ticket = only_ticket(alertdesk, key)
    assert ticket["title"] == "MySQL: Replication lag is too high (over 300s for 5m)"
    assert ticket["severity"] == "major"
    assert ticket["host"] == "db-replica-fr-02"
    assert ticket["host_display"] == "Réplica MySQL commandes (Paris)"
    assert ticket["acknowledged_by"] == "Thomas Leroy (tleroy)"
    assert "Réplica MySQL commandes (Paris) (10.20.8.12), severity High" in ticket["description"]
    assert ticket["source_refs"]["url"] == (
        "https://zabbix.par.example.net/tr_events.php?triggerid=31877&eventid=73120544"
    )
    acknowledged = [h for h in ticket["history"] if h["kind"] == "acknowledged"]
    assert [h["detail"] for h in acknowledged] == ['Backup job "nightly-full" holds a lock; killing it.']


def test_zabbix_test_dialog_gets_the_reason_of_a_refusal(alertdesk: AlertdeskProcess) -> None:
    """The media type's Test button substitutes no macro: the script fails with alertdesk's explanation."""
    settings = {"alertdesk_url": f"{alertdesk.url}/webhooks/zabbix", "alertdesk_token": TOKENS["zabbix"]}
    with pytest.raises(JsError, match=r"HTTP 422: .*EVENT\.ID"):
        run_in_dukpy(media_type()["script"], zabbix_value({}, settings))


def test_zabbix_script_is_ecmascript_5_1() -> None:
    """Zabbix runs Duktape: the script must parse as ES5.1 (acorn, the parser inside Node.js, in ES5 mode)."""
    parse = (
        "const acorn = require('internal/deps/acorn/acorn/dist/acorn');"
        "acorn.parse(require('fs').readFileSync(0, 'utf8'), {ecmaVersion: 5, allowReturnOutsideFunction: true});"
    )

    def parses(source: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["node", "--expose-internals", "-e", parse], input=source, capture_output=True, text=True)

    done = parses(media_type()["script"])
    assert done.returncode == 0, done.stderr
    assert parses("let x = () => `${1}`;").returncode != 0  # the check itself refuses ES6


# Tags and values the Zabbix 6.0 importer accepts for a webhook media type (C60XmlValidator).
ZABBIX_60_MEDIA_TYPE_TAGS = {
    "name", "type", "status", "max_sessions", "attempts", "attempt_interval", "script", "timeout", "process_tags",
    "show_event_menu", "event_menu_url", "event_menu_name", "parameters", "description", "message_templates",
}  # fmt: skip


def test_zabbix_media_type_is_a_6_0_export_with_what_the_normalizer_reads() -> None:
    exported = yaml.safe_load(MEDIA_TYPE.read_text())["zabbix_export"]
    assert exported["version"] == "6.0"
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", exported["date"])
    media = media_type()
    assert media.keys() <= ZABBIX_60_MEDIA_TYPE_TAGS
    assert media["type"] == "WEBHOOK"
    parameters = {p["name"]: p["value"] for p in media["parameters"]}
    for macro in ("EVENT.ID", "EVENT.SOURCE", "EVENT.VALUE", "EVENT.UPDATE.STATUS", "EVENT.NSEVERITY", "TRIGGER.ID"):
        assert parameters[macro] == "{" + macro + "}"
    modes = {(t["event_source"], t["operation_mode"]) for t in media["message_templates"]}
    assert modes == {("TRIGGERS", "PROBLEM"), ("TRIGGERS", "RECOVERY"), ("TRIGGERS", "UPDATE")}


# --- SolarWinds -------------------------------------------------------------------------------------------------

ORION_VARIABLE = re.compile(r"\$\{N=([A-Za-z]+);M=([^${}]*)\}")


def render_orion(template: str, variables: Mapping[str, Mapping[str, str]]) -> str:
    """Orion's substitution: innermost variables first, raw text, nothing escaped; an unknown one renders empty."""

    def value(match: re.Match[str]) -> str:
        name = match[2].split(";F=")[0].strip()
        return variables.get(match[1], {}).get(name, "")

    while ORION_VARIABLE.search(template):
        template = ORION_VARIABLE.sub(value, template)
    return template


def post_orion(url: str, template: Path, variables: Mapping[str, Mapping[str, str]]) -> int:
    """As Orion's "Send a GET or POST request" action posts it: the text box's lines end in CRLF, sent as typed."""
    body = render_orion(template.read_text(encoding="utf-8"), variables).rstrip("\n").replace("\n", "\r\n")
    request = urllib.request.Request(
        url, data=body.encode(), method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


def test_solarwinds_trigger_twice_then_reset_keeps_the_raw_message(alertdesk: AlertdeskProcess) -> None:
    variables = json.loads((PAYLOADS / "solarwinds" / "sender-interface-down.variables").read_text(encoding="utf-8"))
    again = {**variables, "Alerting": {**variables["Alerting"], "AlertTriggerCount": "2"}}
    url = f"{alertdesk.url}/webhooks/solarwinds?token={TOKENS['solarwinds']}"
    folder = SENDERS / "solarwinds"

    assert [
        post_orion(url, folder / "trigger-body.txt", variables),
        post_orion(url, folder / "trigger-body.txt", again),
        post_orion(url, folder / "reset-body.txt", again),
    ] == [202, 202, 202]

    ticket = only_ticket(alertdesk, "solarwinds:2077")
    assert (ticket["status"], ticket["occurrences"]) == ("resolved", 2)
    assert variables["Alerting"]["AlertMessage"] in ticket["description"]
    assert "\\\\fileserver\\noc\\runbooks\\interface-down.docx" in ticket["description"]
    assert ticket["host"] == "CORE-SW-01"
    assert ticket["service"] == 'GigabitEthernet1/0/24 · uplink "CORE-RTR-02"'
    assert ticket["severity"] == "critical"
    assert ticket["source_refs"]["alert_active_id"] == "60418"
