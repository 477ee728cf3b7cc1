"""deploy/ as an operator uses it: every file parses, and everything it names exists in the code.

Each environment variable a deployment file sets must be a real setting, each command a real `alertdesk`
subcommand with real flags, each probe path a route the process serves; the systemd units pass
`systemd-analyze verify`. No Docker or Kubernetes here: the files are checked against the code and the real
processes, not run by an orchestrator.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alertdesk.settings import SECRETS, Settings
from normalizers.schema import Severity
from tests.cluster import Pipeline
from tests.process import AlertdeskProcess
from ticketstore.policy import load_policy

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
SECRET_FILES = {f"ALERTDESK_{name.upper()}_FILE": name for name in SECRETS}
SETTINGS = {f"ALERTDESK_{name.upper()}" for name in Settings.model_fields} | SECRET_FILES.keys()


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def alertdesk_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose()["services"].items() if str(s.get("image", "")).startswith("alertdesk:")}


def k8s_documents() -> list[dict[str, Any]]:
    return [d for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) of every Deployment and StatefulSet."""
    return [
        (doc, container)
        for doc in k8s_documents()
        if doc["kind"] in ("Deployment", "StatefulSet")
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def systemd_units() -> list[Path]:
    return sorted((DEPLOY / "systemd").glob("*.service"))


def exec_start(unit: Path) -> list[str]:
    (line,) = re.findall(r"^ExecStart=(.*)$", unit.read_text(), re.M)
    return shlex.split(line)


# --- every environment variable is a setting --------------------------------------------------------------------


def environment_everywhere() -> dict[str, dict[str, str | None]]:
    """Every ALERTDESK_* a deployment file sets, with its value where the file gives one, by file."""
    found: dict[str, dict[str, str | None]] = {}
    for name, service in alertdesk_services().items():
        found[f"compose.yaml {name}"] = {k: str(v) for k, v in service["environment"].items()}
    env_example = (DEPLOY / "env.example").read_text()
    found["env.example"] = {k: v for k, v in re.findall(r"^#?\s*([A-Z_]+)=(.*)$", env_example, re.M)}
    for doc in k8s_documents():
        if doc["kind"] in ("ConfigMap", "Secret") and doc["metadata"]["name"] == "alertdesk":
            found[f"k8s {doc['kind']}"] = dict(doc.get("data") or doc.get("stringData") or {})
    for workload, container in k8s_containers():
        found[f"k8s {workload['metadata']['name']}"] = {e["name"]: e.get("value") for e in container.get("env", [])}
    docker_env = next(args for instruction, args in dockerfile() if instruction == "ENV")
    found["Dockerfile"] = {k: v for k, _, v in (pair.partition("=") for pair in shlex.split(docker_env))}
    for unit in systemd_units():
        found[unit.name] = {k: v for k, v in re.findall(r"^Environment=([A-Z_]+)=(.*)$", unit.read_text(), re.M)}
    return found


def test_every_environment_variable_set_is_a_real_setting_with_a_valid_value() -> None:
    everywhere = environment_everywhere()
    assert len(everywhere) >= 10  # compose services, env.example, ConfigMap, Secret, workloads, Dockerfile
    for where, variables in everywhere.items():
        ours = {k: v for k, v in variables.items() if k.startswith("ALERTDESK_")}
        assert ours.keys() <= SETTINGS, (where, sorted(ours.keys() - SETTINGS))
        values = {k.removeprefix("ALERTDESK_").lower(): v for k, v in ours.items() if v and "${" not in v}
        Settings.model_validate(values)  # a value of the wrong type (a port that is not a number) raises here
    assert {k for k in everywhere["Dockerfile"] if not k.startswith("ALERTDESK_")} == {"PATH", "PYTHONUNBUFFERED"}


def test_secrets_reach_every_process_as_files_it_is_given() -> None:
    """No deployment file puts a secret in the environment; each _FILE names a file the process really gets."""
    plain = {f"ALERTDESK_{name.upper()}" for name in SECRETS}
    for where, variables in environment_everywhere().items():
        assert not plain & {k for k, v in variables.items() if v}, where
    uncommented = re.findall(r"^([A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    assert not plain & set(uncommented)  # with a unit's or compose's _FILE, it would stop alertdesk at start

    top_level = compose()["secrets"]
    for name, service in alertdesk_services().items():
        files = {k: v for k, v in service["environment"].items() if k in SECRET_FILES}
        assert set(files) == set(SECRET_FILES) - {"ALERTDESK_API_READ_TOKEN_FILE"}, name
        assert {v: f"/run/secrets/{SECRET_FILES[k]}" for k, v in files.items()} == {v: v for v in files.values()}
        assert {SECRET_FILES[k] for k in files} == set(service["secrets"]) <= top_level.keys(), name

    (config,) = (d for d in k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "alertdesk")
    (secret,) = (d for d in k8s_documents() if d["kind"] == "Secret" and d["metadata"]["name"] == "alertdesk")
    files = {k: v for k, v in config["data"].items() if k in SECRET_FILES}
    assert {Path(v).name for v in files.values()} == secret["stringData"].keys() == {SECRET_FILES[k] for k in files}
    for workload, container in k8s_containers():
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        mounted = {
            m["mountPath"]
            for m in container["volumeMounts"]
            if volumes[m["name"]].get("secret", {}).get("secretName") == "alertdesk"
        }
        assert {str(Path(v).parent) for v in files.values()} == mounted, workload["metadata"]["name"]
        assert workload["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001  # 0440: the group reads

    for unit in systemd_units():
        text = unit.read_text()
        credentials = set(re.findall(r"^LoadCredential=([a-z_]+):/etc/alertdesk/secrets/\1$", text, re.M))
        named = dict(re.findall(r"^Environment=(ALERTDESK_[A-Z_]+_FILE)=%d/([a-z_]+)$", text, re.M))
        assert named and {SECRET_FILES[k] for k in named} == set(named.values()) == credentials, unit.name


def test_worker_counts_match_the_number_of_workers() -> None:
    services = alertdesk_services()
    for stage in ("dedup", "store"):
        workers = [s["environment"] for s in services.values() if s["command"] == [stage]]
        assert sorted(int(e["ALERTDESK_WORKER_INDEX"]) for e in workers) == [0, 1]
        assert {e["ALERTDESK_WORKER_COUNT"] for e in workers} == {"2"}
    for workload, container in k8s_containers():
        env = {e["name"]: e for e in container.get("env", [])}
        if workload["kind"] == "StatefulSet":
            assert env["ALERTDESK_WORKER_COUNT"]["value"] == str(workload["spec"]["replicas"])
            index = env["ALERTDESK_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
            assert index == "metadata.labels['apps.kubernetes.io/pod-index']"  # the ordinal
        else:
            assert "ALERTDESK_WORKER_INDEX" not in env


# --- every command is a real subcommand -------------------------------------------------------------------------


def commands_everywhere() -> dict[str, list[str]]:
    """The `alertdesk` arguments each deployment file runs."""
    found = {f"compose.yaml {name}": list(s["command"]) for name, s in alertdesk_services().items()}
    for workload, container in k8s_containers():
        found[f"k8s {workload['metadata']['name']}"] = list(container["args"])
    instructions = dict(dockerfile())
    assert shlex.split(instructions["ENTRYPOINT"].strip("[]").replace(",", " ")) == ["alertdesk"]
    found["Dockerfile CMD"] = shlex.split(instructions["CMD"].strip("[]").replace(",", " "))
    for unit in systemd_units():
        binary, *args = exec_start(unit)
        assert binary == "/usr/local/bin/alertdesk"
        found[unit.name] = args
    return found


def help_text(subcommand: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", subcommand, "--help"], capture_output=True, text=True, timeout=30
    )


@pytest.mark.slow
def test_every_command_is_a_real_subcommand_with_real_flags() -> None:
    everywhere = commands_everywhere()
    assert {args[0] for args in everywhere.values()} == {"run", "ingest", "dedup", "store"}
    helps: dict[str, str] = {}
    for where, (subcommand, *rest) in everywhere.items():
        if subcommand not in helps:
            done = help_text(subcommand)
            assert done.returncode == 0, (where, done.stderr)
            helps[subcommand] = done.stdout
        flags = {arg.split("=")[0] for arg in rest if arg.startswith("-")}
        assert all(re.search(rf"(^|\s){re.escape(f)}\b", helps[subcommand], re.M) for f in flags), (where, flags)


@pytest.mark.slow
def test_the_help_check_refuses_an_unknown_subcommand() -> None:
    assert help_text("ingset").returncode != 0


# --- every probe path is served ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AlertdeskProcess]]:
    """`alertdesk run`, and one ingest, dedup and store on the machine's RabbitMQ and PostgreSQL."""
    workdir = tmp_path_factory.mktemp("deploy")
    run = AlertdeskProcess(workdir, {}).start()
    pipeline = Pipeline(workdir)
    try:
        asyncio.run(pipeline.start(workers=1))
        assert pipeline.ingest is not None
        yield {"run": run, "ingest": pipeline.ingest, "dedup": pipeline.dedup[0], "store": pipeline.store[0]}
    finally:
        run.stop(signal.SIGKILL)
        asyncio.run(pipeline.close())


def probes_everywhere() -> list[tuple[str, str, str]]:
    """(where, subcommand, path) of every health check and scrape path the deployment files use."""
    found = []
    for workload, container in k8s_containers():
        subcommand = container["args"][0]
        where = f"k8s {workload['metadata']['name']}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            found.append((f"{where} {probe}", subcommand, container[probe]["httpGet"]["path"]))
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
        found.append((f"{where} scrape", subcommand, annotations["prometheus.io/path"]))
    healthcheck = dict(dockerfile())["HEALTHCHECK"]
    (path,) = re.findall(r"'http://127\.0\.0\.1:%s(/[a-z]+)'", healthcheck)
    found.append(("Dockerfile HEALTHCHECK", "run", path))
    return found


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_every_probe_path_is_served_by_the_process_it_probes(processes: dict[str, AlertdeskProcess]) -> None:
    probes = probes_everywhere()
    assert {(subcommand, path) for _, subcommand, path in probes} >= {
        ("ingest", "/healthz"), ("ingest", "/readyz"), ("dedup", "/readyz"), ("store", "/readyz"),
        ("store", "/metrics"), ("run", "/healthz"),
    }  # fmt: skip
    for where, subcommand, path in probes:
        with urllib.request.urlopen(f"{processes[subcommand].url}{path}", timeout=5) as resp:
            assert resp.status == 200, where


def test_k8s_workloads_have_resources_and_disruption_budgets() -> None:
    docs = k8s_documents()
    budgets = [d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"]
    services = [d["spec"]["selector"] for d in docs if d["kind"] == "Service"]
    for workload, container in k8s_containers():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"] == labels
        assert container["resources"]["requests"].keys() == {"cpu", "memory"}
        assert "memory" in container["resources"]["limits"]
        assert [b for b in budgets if b.items() <= labels.items()], workload["metadata"]["name"]
        assert [s for s in services if s.items() <= labels.items()], workload["metadata"]["name"]
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


def test_k8s_policy_is_the_shipped_default_policy() -> None:
    (policy,) = (d for d in k8s_documents() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "alertdesk-policy")
    assert yaml.safe_load(policy["data"]["policy.yaml"]) == yaml.safe_load((DEPLOY / "policy.yaml").read_text())


# --- the rest of deploy/ ----------------------------------------------------------------------------------------


def test_default_policy_loads_with_the_contract_defaults() -> None:
    policy = load_policy(DEPLOY / "policy.yaml")
    expected = {
        Severity.CRITICAL: ("P1", timedelta(minutes=15), timedelta(hours=4)),
        Severity.MAJOR: ("P2", timedelta(minutes=30), timedelta(hours=8)),
        Severity.MINOR: ("P3", timedelta(hours=4), timedelta(hours=24)),
        Severity.WARNING: ("P4", timedelta(hours=8), timedelta(hours=72)),
        Severity.INFO: ("P5", None, None),
    }
    for severity, (priority, respond, resolve) in expected.items():
        rule = policy.for_severity(severity)
        assert (rule.priority, rule.respond_within, rule.resolve_within) == (priority, respond, resolve)
    assert [step.group for step in policy.for_severity(Severity.CRITICAL).escalation] == ["oncall-l2", "ops-managers"]


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = [args.split() for instruction, args in dockerfile() if instruction == "COPY" and "--from" not in args]
    sources = {source for *sources, _ in copied for source in sources}
    assert packages | {"pyproject.toml", project["project"]["readme"], "deploy/policy.yaml"} == sources
    assert all((ROOT / source).exists() for source in sources)


def test_compose_has_the_whole_stack_and_its_files_exist() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "postgres", "prometheus", "grafana"} <= services.keys()
    stages = [s["command"][0] for s in alertdesk_services().values()]
    replicas = services["ingest"]["deploy"]["replicas"]
    assert (replicas, stages.count("dedup"), stages.count("store")) == (2, 2, 2)
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    dashboards = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "alertdesk.yaml").read_text())
    mounted = {v.split(":")[1].rsplit("/", 1)[0] for v in services["grafana"]["volumes"] if v.endswith(".json:ro")}
    assert {p["options"]["path"] for p in dashboards["providers"]} == mounted


def test_prometheus_config_passes_promtool_and_scrapes_compose_services(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = set()
    for job in config["scrape_configs"]:
        targets |= {t for static in job.get("static_configs", []) for t in static["targets"]}
        targets |= {f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
    assert {t.split(":")[0] for t in targets} == alertdesk_services().keys()
    # promtool reads the rule files too: point the config at the repository's copy instead of the container's path.
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules.yaml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- systemd ----------------------------------------------------------------------------------------------------


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed, except that /usr/local/bin/alertdesk is this checkout's real `alertdesk`."""
    binary = shutil.which("alertdesk", path=str(Path(sys.executable).parent))
    assert binary is not None
    names = []
    for unit in systemd_units():
        (tmp_path / unit.name).write_text(unit.read_text().replace("/usr/local/bin/alertdesk", binary))
        names.append(unit.name.replace("@.service", "@0.service"))
    assert sorted(names) == [
        "alertdesk-dedup@0.service", "alertdesk-ingest@0.service", "alertdesk-store@0.service", "alertdesk.service"
    ]  # fmt: skip
    done = subprocess.run(["systemd-analyze", "verify", *names], cwd=tmp_path, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
