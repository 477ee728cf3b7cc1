"""The Grafana dashboard and the Prometheus rules query only what the running processes export.

Traffic goes first (accepted, repeated, rejected for each reason, ignored, a ticket escalated and its SLA
breached, a notification failing, an alert dead-lettered), so that every labelled series exists; then each
metric a query names must be on some process's /metrics, with every label the query filters, groups or prints
by, and every label value it filters on a value the code can produce. Dashboard and code cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics import UNKNOWN_SOURCE, Outcome, Reason
from normalizers.schema import Severity, Source
from tests.cluster import Pipeline
from tests.process import AlertdeskProcess

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "alertdesk.json"
PAYLOADS = Path(__file__).parent / "payloads"
SOLARWINDS_TOKEN = "0r10n-obs-5d1c"

# Label values the code can produce, for labels whose series a test cannot all bring about (a 500, say).
VOCABULARY: dict[tuple[str, str], set[str]] = {
    ("alertdesk_webhook_requests_total", "outcome"): set(get_args(Outcome)),
    ("alertdesk_webhook_rejections_total", "reason"): set(get_args(Reason)),
}
LABEL_VOCABULARY = {"source": {s.value for s in Source} | {UNKNOWN_SOURCE}, "severity": {s.value for s in Severity}}

# Deadlines of seconds, so that escalations, breaches and notifications happen during the test.
FAST_POLICY = """\
channels:
  ops-hook: {type: webhook, url: "http://127.0.0.1:%d/alertdesk"}
severities:
  critical:
    priority: P1
    respond_within: 1s
    resolve_within: 2s
    notify: [ops-hook]
    escalation:
      - {after: 1s, group: oncall-l2, notify: [ops-hook]}
"""


# --- what the processes export ----------------------------------------------------------------------------------


@dataclass
class Exported:
    """Sample names → label names, and (sample name, label) → values seen, over several scrapes."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add(self, exposition: str) -> None:
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    self.values.setdefault((sample.name, label), set()).add(value)


def scrape(proc: AlertdeskProcess) -> str:
    with urllib.request.urlopen(f"{proc.url}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def post(url: str, body: bytes, content_type: str, key: str | None = None) -> int:
    headers = {"Content-Type": content_type, **({"Idempotency-Key": key} if key else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def send_traffic(base: str) -> list[int]:
    """One of each answer: accepted (new, repeated, recovered), ignored, and every rejection reason."""
    zabbix = json.loads((PAYLOADS / "zabbix" / "ingest-problem-cpu.json").read_text())
    nagios = "NOTIFICATIONTYPE=PROBLEM&HOSTNAME=web-01&SERVICEDESC=HTTP&SERVICESTATE=CRITICAL&SERVICEOUTPUT=down"
    form, js = "application/x-www-form-urlencoded", "application/json"
    orion = "event_type=trigger&\r\nAlertObjectID=1842&\r\nNodeName=CORE-SW-01&\r\nSeverity=Critical"
    return [
        post(f"{base}/webhooks/nagios", nagios.encode(), form, key="nagios/web-01/HTTP/1"),
        post(f"{base}/webhooks/nagios", nagios.encode(), form, key="nagios/web-01/HTTP/1"),  # a retry
        post(f"{base}/webhooks/zabbix", json.dumps(zabbix).encode(), js),
        post(f"{base}/webhooks/zabbix", json.dumps({**zabbix, "EVENT.VALUE": "0"}).encode(), js),
        post(f"{base}/webhooks/zabbix", json.dumps({**zabbix, "EVENT.SOURCE": "1"}).encode(), js),  # ignored
        post(f"{base}/webhooks/solarwinds?token={SOLARWINDS_TOKEN}", orion.encode(), form),
        post(f"{base}/webhooks/solarwinds", orion.encode(), form),  # no token: 401
        post(f"{base}/webhooks/nagios", b"NOTIFICATIONTYPE=PROBLEM", form),  # 422
        post(f"{base}/webhooks/zabbix", b"{not json", js),  # 400
        post(f"{base}/webhooks/zabbix", b"EVENT.ID=1", "text/plain"),  # 415
        post(f"{base}/webhooks/zabbix", b"{}" + b" " * 2_000_000, js),  # 413
        post(f"{base}/webhooks/prtg", b"{}", js),  # 404
    ]


EXPECTED_ANSWERS = [202, 202, 202, 202, 202, 202, 401, 422, 400, 415, 413, 404]


class FailingReceiver(BaseHTTPRequestHandler):
    """A notification channel that is down: every notification fails and stays in the outbox."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def wait_for(proc: AlertdeskProcess, pattern: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not re.search(pattern, scrape(proc), re.M):
        assert time.monotonic() < deadline, f"no {pattern} on {proc.command}:\n{proc.output()[-3000:]}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """What `alertdesk run` and a distributed ingest, dedup and store export after traffic."""
    workdir = tmp_path_factory.mktemp("observability")
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), FailingReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    policy = workdir / "policy.yaml"
    policy.write_text(FAST_POLICY % receiver.server_address[1])
    env = {"ALERTDESK_POLICY": str(policy), "ALERTDESK_SOLARWINDS_TOKEN": SOLARWINDS_TOKEN}
    run = AlertdeskProcess(workdir, env).start()
    pipeline = Pipeline(workdir, extra_env=env)
    try:
        asyncio.run(pipeline.start(workers=1))
        assert pipeline.ingest is not None
        for base in (run.url, pipeline.url):
            assert send_traffic(base) == EXPECTED_ANSWERS
        poison = (PAYLOADS / "nagios" / "poison-host-longer-than-255.jsonl").read_text().splitlines()[0]
        assert post(f"{pipeline.url}/webhooks/nagios", poison.encode(), "application/json") == 422
        wait_for(run, r'^alertdesk_escalations_total\{level="1"\}')
        wait_for(run, r'^alertdesk_sla_breaches_total\{kind="resolution"')
        wait_for(run, r'^alertdesk_notifications_total\{channel="ops-hook",outcome="failed"\}')
        wait_for(pipeline.store[0], r'^alertdesk_dead_letters_total\{stage="store"\}')
        found = Exported()
        for proc in (run, pipeline.ingest, *pipeline.dedup, *pipeline.store):
            found.add(scrape(proc))
        yield found
    finally:
        run.stop(signal.SIGKILL)
        asyncio.run(pipeline.close())
        receiver.shutdown()
        receiver.server_close()


# --- what the dashboard and the rules query ---------------------------------------------------------------------

METRIC = re.compile(r"\b(alertdesk_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
AGGREGATION_BY = re.compile(r"\b(?:sum|min|max|avg|count|group|stddev|stdvar)\s+by\s*\(([^)]*)\)\s*\(")


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    printed: frozenset[str]  # labels the legend or the annotations print


def dashboard_queries() -> list[Query]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [
        Query(f"panel {p['title']!r}", t["expr"], frozenset(re.findall(r"\{\{\s*(\w+)\s*\}\}", t["legendFormat"])))
        for p in panels
        for t in p.get("targets", [])
    ]


def rule_queries() -> list[Query]:
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    return [
        Query(f"rule {r['alert']}", r["expr"], frozenset(re.findall(r"\$labels\.(\w+)", json.dumps(r["annotations"]))))
        for r in rules
    ]


def argument(expr: str, open_at: int) -> str:
    """The text inside the parenthesis opened at `open_at`."""
    depth = 0
    for i in range(open_at, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[i], 0)
        if depth == 0:
            return expr[open_at + 1 : i]
    raise AssertionError(f"unbalanced: {expr}")


def problems(query: Query, exported: Exported) -> list[str]:
    """What the query names that no process exports."""
    found = []
    assert " without" not in query.expr and ") by" not in query.expr, "write `agg by (labels) (...)`"
    metrics = [m[1] for m in METRIC.finditer(query.expr)]
    if not metrics:
        found.append("queries no alertdesk metric")
    for match in METRIC.finditer(query.expr):
        name, selector = match[1], match[2] or ""
        if name not in exported.labels:
            found.append(f"{name} is not exported")
            continue
        for label, op, value in MATCHER.findall(selector):
            if label not in exported.labels[name]:
                found.append(f"{name} has no label {label}")
                continue
            possible = exported.values.get((name, label), set())
            possible |= VOCABULARY.get((name, label), set()) | LABEL_VOCABULARY.get(label, set())
            wanted = value.split("|") if op == "=~" else [value]
            found += [f'{name}{{{label}="{v}"}} can never exist' for v in wanted if v not in possible]
    for match in AGGREGATION_BY.finditer(query.expr):
        labels = {label.strip() for label in match[1].split(",") if label.strip()}
        for name, _ in METRIC.findall(argument(query.expr, match.end() - 1)):
            grouped = labels - exported.labels.get(name, set(labels))
            found += [f"{name} has no label {label} to group by" for label in sorted(grouped)]
    for name in metrics:
        printed = query.printed - exported.labels.get(name, set(query.printed))
        found += [f"{name} has no label {label} to print" for label in sorted(printed)]
    return found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_the_processes_answered_every_kind_of_request(exported: Exported) -> None:
    outcomes = exported.values[("alertdesk_webhook_requests_total", "outcome")]
    reasons = exported.values[("alertdesk_webhook_rejections_total", "reason")]
    assert outcomes == {"accepted", "ignored", "rejected"}
    assert reasons == set(get_args(Reason))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_every_dashboard_query_uses_exported_series(exported: Exported) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    assert {q.where: problems(q, exported) for q in queries if problems(q, exported)} == {}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_every_rule_uses_exported_series(exported: Exported) -> None:
    queries = rule_queries()
    assert len(queries) >= 10
    assert {q.where: problems(q, exported) for q in queries if problems(q, exported)} == {}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_the_check_finds_a_misspelled_metric_label_and_value(exported: Exported) -> None:
    bad = Query("bad", 'sum by (host) (rate(alertdesk_webhook_request_total{outcome="eror"}[5m]))', frozenset())
    assert problems(bad, exported) == ["alertdesk_webhook_request_total is not exported"]
    bad = Query("bad", 'sum by (host) (rate(alertdesk_webhook_requests_total{outcome="eror"}[5m]))', frozenset({"x"}))
    assert problems(bad, exported) == [
        'alertdesk_webhook_requests_total{outcome="eror"} can never exist',
        "alertdesk_webhook_requests_total has no label host to group by",
        "alertdesk_webhook_requests_total has no label x to print",
    ]


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(q.expr for q in dashboard_queries())
    for metric in (
        "alertdesk_webhook_requests_total",  # intake by source and outcome
        "alertdesk_webhook_rejections_total",  # rejections
        "alertdesk_dedup_commands_total",  # fold ratio
        "alertdesk_broker_queue_messages",  # queue depth
        "alertdesk_consumer_lag_seconds_bucket",  # lag
        "alertdesk_dead_letters_total",  # dead letters
        "alertdesk_tickets_opened_total",  # tickets by severity
        "alertdesk_sla_breaches_total",  # SLA breaches
        "alertdesk_escalations_total",  # escalations
        "alertdesk_alert_to_ticket_seconds_bucket",  # latency quantiles
    ):
        assert metric in exprs
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
