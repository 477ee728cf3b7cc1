"""The escalation policy file (CONTRACT §3) as an operator writes it: what loads, and what refuses to start.

A wrong policy must stop `alertdesk run` before it takes a single alert, with a message that names the field (and
the line) at fault: a typo found at 03:00 by a missing page is found too late.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from normalizers.schema import Alert, Kind, Severity, Source
from tests.process import AlertdeskProcess
from ticketstore.calendar import BusinessHours
from ticketstore.policy import Policy, PolicyError, load_policy

CONTRACT_EXAMPLE = """\
default_group: service-desk
channels:
  ops-hook: {type: webhook, url: "https://ops.example.net/alertdesk"}
  ops-slack: {type: slack, url: "https://hooks.slack.com/services/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"}
  ops-teams: {type: teams, url: "https://contoso.webhook.office.com/webhookb2/7f3c1a2e/IncomingWebhook/4be1d3c9"}
severities:
  critical:
    priority: P1
    respond_within: 15m        # acknowledge by then, or the response SLA is breached
    resolve_within: 4h
    notify: [ops-hook, ops-slack]          # on open, severity rise, resolve
    escalation:                # while unacknowledged, counted from opening
      - {after: 15m, group: oncall-l2, notify: [ops-hook]}
      - {after: 30m, group: ops-managers, notify: [ops-hook, ops-teams]}
  info: {priority: P5}
routes:                        # first match sets the group on open
  - {match: {source: zabbix, host: "db*"}, group: dba}
"""

TRACKERS_EXAMPLE = """\
trackers:
  snow:
    type: servicenow                 # servicenow | jira | zendesk
    url: https://example.service-now.com
    user: alertdesk
    password_file: /run/secrets/snow
    inbound_token_file: /run/secrets/snow-inbound   # the tracker's calls back to alertdesk carry this token
  jira:
    type: jira                       # Jira Cloud (REST v3) and Data Center (REST v2)
    url: https://example.atlassian.net
    user: ops@example.com
    token_env: JIRA_API_TOKEN
    project: OPS
    issue_type: Incident
severities:
  critical: {tracker: snow}          # which tracker gets the tickets of a severity…
routes:
  - match: {source: zabbix, host: "db*"}
    group: dba
    tracker: jira                    # …or of a route (the route wins)
    runbook: "https://wiki.example.com/runbooks/{source}/{host}/{service}"
"""

FULL_EXAMPLE = """\
default_group: service-desk
channels:
  ops-hook: {type: webhook, url: "https://ops.example.net/alertdesk"}
  noc-slack: {type: slack, url: "https://hooks.slack.com/services/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"}
business_hours:
  timezone: Europe/Paris
  days: [mon, tue, wed, thu, fri]
  start: "08:00"
  end: "18:00"
severities:
  critical:
    priority: P1
    respond_within: 10m
    resolve_within: 2h
    notify: [ops-hook, noc-slack]
    escalation:
      - {after: 10m, group: oncall-l2, notify: [ops-hook]}
      - {after: 30m, group: ops-managers, notify: [ops-hook, noc-slack]}
  major: {priority: P2, respond_within: 30m, resolve_within: 8h, notify: [ops-hook]}
  minor: {priority: P3, respond_within: 4h, resolve_within: 1d, business_hours: true}
  warning: {priority: P4, respond_within: 8h, resolve_within: 3d, business_hours: true}
  info: {priority: P5}
routes:
  - {match: {source: zabbix, host: "db*"}, group: dba}
  - {match: {source: nagios, service: "DISK *", severity: critical}, group: storage}
flapping: {cycles: 4, window: 2h, quiet: 45m}
reopen_within: 0s
overrides:
  - {match: {source: solarwinds, severity: critical}, reopen_within: 30m}
  - {match: {source: nagios, instance: lab}, flapping: {cycles: 2, window: 30m, quiet: 10m}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problem(source: Source, host: str, service: str | None, severity: Severity) -> Alert:
    return Alert(
        id=str(uuid.uuid4()),
        source=source,
        dedup_key=f"{source.value}:{host}/{service}",
        kind=Kind.PROBLEM,
        severity=severity,
        host=host,
        service=service,
        title=f"{service or 'host'} on {host}",
        received_at=datetime(2026, 3, 14, 3, 0, tzinfo=UTC),
    )


def table(policy: Policy) -> dict[str, tuple[str, timedelta | None, timedelta | None]]:
    """severity -> (priority, respond within, resolve within), as CONTRACT §3's table shows them."""
    return {
        s.value: (rule.priority, rule.respond_within, rule.resolve_within)
        for s in Severity
        for rule in [policy.for_severity(s)]
    }


# --- what loads ----------------------------------------------------------------------------------------------


def test_no_policy_file_gives_the_documented_defaults() -> None:
    policy = load_policy(None)

    assert table(policy) == {
        "critical": ("P1", timedelta(minutes=15), timedelta(hours=4)),
        "major": ("P2", timedelta(minutes=30), timedelta(hours=8)),
        "minor": ("P3", timedelta(hours=4), timedelta(hours=24)),
        "warning": ("P4", timedelta(hours=8), timedelta(hours=72)),
        "info": ("P5", None, None),
    }
    assert policy.default_group == "service-desk"
    assert policy.route(problem(Source.ZABBIX, "db-paris-02", None, Severity.MAJOR)) is None
    assert all(policy.for_severity(s).escalation == () for s in Severity)  # no channels: nobody to page
    assert policy.reopen_window("nagios", "critical", None) == timedelta(0)
    flapping = policy.flapping_for("nagios", "warning", None)
    assert (flapping.cycles, flapping.window, flapping.quiet) == (3, timedelta(hours=1), timedelta(minutes=30))


def test_the_contract_example_loads_and_unlisted_severities_keep_their_defaults(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, CONTRACT_EXAMPLE))

    assert {name: c.type for name, c in policy.channels.items()} == {
        "ops-hook": "webhook",
        "ops-slack": "slack",
        "ops-teams": "teams",
    }
    critical = policy.for_severity(Severity.CRITICAL)
    assert critical.notify == ("ops-hook", "ops-slack")
    assert [(s.after, s.group, s.notify) for s in critical.escalation] == [
        (timedelta(minutes=15), "oncall-l2", ("ops-hook",)),
        (timedelta(minutes=30), "ops-managers", ("ops-hook", "ops-teams")),
    ]
    assert table(policy)["info"] == ("P5", None, None)
    assert table(policy)["major"] == ("P2", timedelta(minutes=30), timedelta(hours=8))
    assert policy.route(problem(Source.ZABBIX, "db-paris-02", None, Severity.MAJOR)) == "dba"
    assert policy.route(problem(Source.NAGIOS, "db-paris-02", "MySQL connections", Severity.MAJOR)) is None


def test_a_full_policy_with_calendar_routes_and_overrides_loads(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, FULL_EXAMPLE))

    assert table(policy)["minor"] == ("P3", timedelta(hours=4), timedelta(days=1))
    assert policy.for_severity(Severity.WARNING).business_hours
    assert not policy.for_severity(Severity.CRITICAL).business_hours
    assert policy.business_hours is not None
    assert (policy.business_hours.timezone, policy.business_hours.start, policy.business_hours.end) == (
        "Europe/Paris",
        time(8, 0),
        time(18, 0),
    )
    assert policy.route(problem(Source.NAGIOS, "web-01", "DISK /", Severity.CRITICAL)) == "storage"
    assert policy.route(problem(Source.NAGIOS, "web-01", "DISK /", Severity.WARNING)) is None
    assert policy.reopen_window("solarwinds", "critical", None) == timedelta(minutes=30)
    assert policy.reopen_window("solarwinds", "major", None) == timedelta(0)
    lab = policy.flapping_for("nagios", "warning", "lab")
    assert (lab.cycles, lab.window, lab.quiet) == (2, timedelta(minutes=30), timedelta(minutes=10))
    assert policy.flapping_for("nagios", "warning", None).cycles == 4


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations_are_written_with_a_unit(tmp_path: Path, written: str, meant: timedelta) -> None:
    policy = load_policy(write(tmp_path, f"severities:\n  major: {{priority: P2, respond_within: {written}}}\n"))

    assert policy.for_severity(Severity.MAJOR).respond_within == meant


# --- what refuses to load --------------------------------------------------------------------------------------

BROKEN = {
    "bad duration": (
        "severities:\n  critical:\n    priority: P1\n    respond_within: 15x\n",
        ["severities.critical.respond_within", "'15x' is not a duration like 30s, 15m, 4h or 2d", "(line 4)"],
    ),
    "unknown severity": (
        "severities:\n  critical: {priority: P1}\n  urgent: {priority: P1}\n",
        ["severities.urgent", "'critical', 'major', 'minor', 'warning' or 'info'", "(line 3)"],
    ),
    "unknown channel": (
        "channels:\n  ops-hook: {type: webhook, url: 'https://ops.example.net/alertdesk'}\n"
        "severities:\n  critical: {priority: P1, notify: [ops-hook, ops-pager]}\n",
        ["severities.critical: unknown channel(s) ops-pager"],
    ),
    "unknown channel in a step": (
        "severities:\n  major:\n    priority: P2\n    escalation:\n      - {after: 30m, notify: [noc-teams]}\n",
        ["severities.major: unknown channel(s) noc-teams"],
    ),
    "priority P9": (
        "severities:\n  critical:\n    priority: P9\n",
        ["severities.critical.priority", "'^P[1-5]$'", "(line 3)"],
    ),
    "steps out of order": (
        "severities:\n  critical:\n    priority: P1\n    escalation:\n"
        "      - {after: 30m, group: ops-managers}\n      - {after: 15m, group: oncall-l2}\n",
        ["severities.critical", "escalation steps must be in increasing order of `after`", "(line 2)"],
    ),
    "misspelt key": (
        "severities:\n  warning:\n    priority: P4\n    respond_whithin: 8h\n",
        ["severities.warning.respond_whithin", "Extra inputs are not permitted", "(line 4)"],
    ),
    "unknown channel type": (
        "channels:\n  ops-pager:\n    type: pagerduty\n    url: https://events.pagerduty.com/v2/enqueue\n",
        ["channels.ops-pager.type", "'webhook', 'slack', 'teams' or 'webex'", "(line 3)"],
    ),
    "business hours used but not defined": (
        "severities:\n  warning: {priority: P4, business_hours: true}\n",
        ["severities warning use business_hours, but no business_hours is defined"],
    ),
    "unknown runbook placeholder": (
        "routes:\n  - match: {source: nagios}\n    runbook: 'https://wiki.example.net/{source}/{hostname}'\n",
        ["routes.0.runbook", "unknown placeholder {hostname}; known: {source}, {instance}", "(line 3)"],
    ),
    "runbook that is no link": (
        "severities:\n  critical: {priority: P1, runbook: 'wiki/{host}'}\n",
        ["severities.critical.runbook", "a runbook link starts with http:// or https://", "(line 2)"],
    ),
    "runbook with a format": (
        "severities:\n  critical: {priority: P1, runbook: 'https://wiki.example.net/{host:>10}'}\n",
        ["severities.critical.runbook", "placeholder {host} takes no format or conversion", "(line 2)"],
    ),
    "tracker of an unknown type": (
        "trackers:\n  rt:\n    type: requesttracker\n    url: https://rt.example.net\n    token_env: RT\n",
        ["trackers.rt.type", "'servicenow', 'jira' or 'zendesk'", "(line 3)"],
    ),
    "jira without project": (
        "trackers:\n  jira:\n    type: jira\n    url: https://example.atlassian.net\n    user: ops@example.com\n"
        "    token_env: JIRA_API_TOKEN\n",
        ["trackers.jira: jira needs project (the project key, e.g. OPS)", "(line 2)"],
    ),
    "tracker with a password written in it": (
        "trackers:\n  snow:\n    type: servicenow\n    url: https://example.service-now.com\n    user: alertdesk\n"
        "    password: hunter2\n",
        ["trackers.snow.password", "Extra inputs are not permitted", "(line 6)"],
    ),
    "tracker with two credentials": (
        "trackers:\n  zd:\n    type: zendesk\n    url: https://example.zendesk.com\n    user: ops@example.com\n"
        "    token_file: /run/secrets/zd\n    token_env: ZD_TOKEN\n",
        ["trackers.zd: give exactly one of password_file, password_env, token_file, token_env", "(line 2)"],
    ),
    "tracker url without scheme": (
        "trackers:\n  snow: {type: servicenow, url: example.service-now.com, user: a, password_env: SNOW}\n",
        ["trackers.snow.url", "(line 2)"],
    ),
    "unknown tracker on a severity": (
        "severities:\n  critical: {priority: P1, tracker: snow}\n",
        ["severities.critical.tracker: unknown tracker 'snow' (not in trackers)"],
    ),
    "unknown tracker on a route": (
        "routes:\n  - {match: {host: 'db*'}, group: dba, tracker: jira}\n",
        ["routes.0.tracker: unknown tracker 'jira' (not in trackers)"],
    ),
    "bad YAML": (
        "severities:\n  critical:\n    priority: P1\n   respond_within: 15m\n",
        ["not valid YAML", "line 4"],
    ),
}


@pytest.mark.parametrize(("text", "expected"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_policy_is_refused_naming_the_field_and_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)

    with pytest.raises(PolicyError) as refused:
        load_policy(path)

    message = str(refused.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


def test_the_contract_trackers_example_loads_and_a_route_wins_over_the_severity(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, TRACKERS_EXAMPLE))

    snow, jira = policy.trackers["snow"], policy.trackers["jira"]
    assert (snow.type, snow.user, snow.secret.file) == ("servicenow", "alertdesk", Path("/run/secrets/snow"))
    assert (jira.project, jira.issue_type, jira.jira_version, jira.secret.env) == (
        "OPS",
        "Incident",
        3,
        "JIRA_API_TOKEN",
    )
    assert jira.priority_name("P1") == "Highest" and jira.priority_name("P5") == "Lowest"
    db = problem(Source.ZABBIX, "db-02", "MySQL is down", Severity.CRITICAL)
    web = problem(Source.ZABBIX, "web-02", "HTTP is down", Severity.CRITICAL)
    assert policy.tracker_for(db, Severity.CRITICAL) == "jira"
    assert policy.tracker_for(web, Severity.CRITICAL) == "snow"
    assert policy.tracker_for(web, Severity.MAJOR) is None
    assert (
        policy.runbook_url(db, Severity.CRITICAL) == "https://wiki.example.com/runbooks/zabbix/db-02/MySQL%20is%20down"
    )
    assert policy.runbook_url(web, Severity.CRITICAL) is None


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"policy\.yaml: cannot read: No such file or directory"):
        load_policy(tmp_path / "policy.yaml")


def test_the_line_named_is_the_one_at_fault_when_the_key_repeats(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "severities:\n  critical:\n    priority: P1\n    respond_within: 15m\n"
        "  major:\n    priority: P2\n    respond_within: 30x\n",
    )

    with pytest.raises(PolicyError) as refused:
        load_policy(path)

    assert "severities.major.respond_within" in str(refused.value)
    assert "(line 7)" in str(refused.value)


@pytest.mark.slow
def test_alertdesk_run_refuses_to_start_with_a_broken_policy(tmp_path: Path) -> None:
    path = write(tmp_path, "severities:\n  critical:\n    priority: P1\n    respond_within: 15x\n")
    proc = AlertdeskProcess(tmp_path, {"ALERTDESK_POLICY": str(path)})

    with pytest.raises(AssertionError, match="alertdesk exited with 2"):
        proc.start()

    output = proc.output()
    assert "severities.critical.respond_within" in output
    assert "'15x' is not a duration" in output
    assert "(line 4)" in output
    assert "listening on" not in output


def test_alertdesk_run_refuses_to_start_when_a_tracker_credential_variable_is_not_set(tmp_path: Path) -> None:
    path = write(tmp_path, TRACKERS_EXAMPLE)
    env = {"ALERTDESK_POLICY": str(path), "ALERTDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"}
    proc = AlertdeskProcess(tmp_path, env)
    proc.env.pop("JIRA_API_TOKEN", None)

    with pytest.raises(AssertionError, match="alertdesk exited with 2"):
        proc.start()

    assert "trackers.jira.token_env: environment variable JIRA_API_TOKEN is not set" in proc.output()


PARIS_OFFICE = BusinessHours(timezone="Europe/Paris", start=time(8), end=time(18))


@pytest.mark.parametrize(
    ("start", "end", "business"),
    [
        ((2026, 3, 13, 14), (2026, 3, 13, 16), timedelta(hours=2)),  # Friday 15:00-17:00 in Paris
        ((2026, 3, 13, 16), (2026, 3, 16, 8), timedelta(hours=2)),  # Friday 17:00 to Monday 09:00: 17-18, 8-9
        ((2026, 3, 14, 9), (2026, 3, 15, 20), timedelta(0)),  # a weekend
        ((2026, 3, 16, 5), (2026, 3, 17, 5), timedelta(hours=10)),  # Monday 06:00 to Tuesday 06:00: one whole day
        ((2026, 3, 16, 12), (2026, 3, 16, 10), timedelta(0)),  # an end before the start
    ],
)
def test_business_time_between_two_instants_counts_only_opening_hours(
    start: tuple[int, ...], end: tuple[int, ...], business: timedelta
) -> None:
    begin, finish = datetime(*start, tzinfo=UTC), datetime(*end, tzinfo=UTC)

    assert PARIS_OFFICE.between(begin, finish) == business
    if business:  # the two agree: counting up to where `add` lands gives back what was added
        assert PARIS_OFFICE.between(begin, PARIS_OFFICE.add(begin, business)) == business
