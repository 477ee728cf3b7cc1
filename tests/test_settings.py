"""Secret settings from files (`ALERTDESK_<NAME>_FILE`), as Docker and Kubernetes hand secrets to a container."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from alertdesk.secret_files import InvalidSetting
from alertdesk.settings import SECRETS, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ALERTDESK_* of the machine running the tests leaks into these."""
    for name in list(os.environ):
        if name.startswith("ALERTDESK_"):
            monkeypatch.delenv(name)


def value(settings: Settings, name: str) -> str | None:
    found = getattr(settings, name)
    return found.get_secret_value() if isinstance(found, SecretStr) else found


@pytest.mark.parametrize("name", SECRETS)
def test_each_secret_is_read_from_the_file_its_FILE_variable_names(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / name
    secret.write_text(f"{name}-from-a-file\n")  # `echo … > file`: the newline is not part of the value
    monkeypatch.setenv(f"ALERTDESK_{name.upper()}_FILE", str(secret))

    assert value(Settings(), name) == f"{name}-from-a-file"


def test_a_file_token_guards_its_webhook_like_a_plain_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zabbix").write_text("z-token\r\n")
    monkeypatch.setenv("ALERTDESK_ZABBIX_TOKEN_FILE", str(tmp_path / "zabbix"))
    monkeypatch.setenv("ALERTDESK_NAGIOS_TOKEN", "n-token")

    assert {source.value: token for source, token in Settings().source_tokens().items()} == {
        "zabbix": "z-token",
        "nagios": "n-token",
    }


def test_both_forms_of_one_secret_are_refused_naming_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("from-the-file")
    monkeypatch.setenv("ALERTDESK_API_TOKEN", "from-the-variable")
    monkeypatch.setenv("ALERTDESK_API_TOKEN_FILE", str(tmp_path / "token"))

    with pytest.raises(InvalidSetting, match="ALERTDESK_API_TOKEN and ALERTDESK_API_TOKEN_FILE are both set"):
        Settings()


@pytest.mark.parametrize("kind", ["missing", "directory", "not text"])
def test_an_unreadable_file_is_refused_naming_the_path(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "broker_url"
    if kind == "directory":
        path.mkdir()
    elif kind == "not text":
        path.write_bytes(b"\xff\xfe\x00amqp")
    monkeypatch.setenv("ALERTDESK_BROKER_URL_FILE", str(path))

    with pytest.raises(InvalidSetting, match=f"cannot read ALERTDESK_BROKER_URL_FILE={path}: "):
        Settings()


def test_a_flag_wins_over_the_file_which_is_then_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTDESK_DATABASE_URL_FILE", "/nonexistent/database_url")

    assert Settings(database_url="sqlite+aiosqlite:///flag.db").database_url == "sqlite+aiosqlite:///flag.db"


# --- as an operator meets it ------------------------------------------------------------------------------------


def alertdesk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALERTDESK_")}
    return subprocess.run(
        [sys.executable, "-m", "alertdesk.cli", *args],
        env={**clean, **env, "ALERTDESK_PORT": "1"},  # never listens: start-up stops before
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_run_stops_with_exit_2_naming_both_variables_or_the_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    both = alertdesk(
        "run", env={"ALERTDESK_NAGIOS_TOKEN": "t", "ALERTDESK_NAGIOS_TOKEN_FILE": str(tmp_path / "token")}, cwd=tmp_path
    )
    assert both.returncode == 2
    assert "ALERTDESK_NAGIOS_TOKEN and ALERTDESK_NAGIOS_TOKEN_FILE are both set" in both.stderr

    missing = tmp_path / "no-such-secret"
    unreadable = alertdesk("run", env={"ALERTDESK_DATABASE_URL_FILE": str(missing)}, cwd=tmp_path)
    assert unreadable.returncode == 2
    assert f"cannot read ALERTDESK_DATABASE_URL_FILE={missing}: No such file or directory" in unreadable.stderr
    assert not (tmp_path / "alertdesk.db").exists()  # stopped before touching any database


@pytest.mark.slow
def test_help_lists_the_FILE_variant_of_every_secret(tmp_path: Path) -> None:
    done = alertdesk("--help", env={}, cwd=tmp_path)
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.strip().startswith("ALERTDESK_")}
    assert {f"ALERTDESK_{name.upper()}_FILE" for name in SECRETS} <= listed
    assert "ALERTDESK_HOST_FILE" not in listed  # only secrets have one


def test_the_store_commits_what_arrived_while_it_committed_and_dedup_gathers_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dedup's window gathers its ticket commands into one message per partition; a timer in the store would only
    add its length to every alert's time to its ticket."""
    from alertdesk.distributed import worker_config
    from dedup.rabbitmq.topology import Stream

    settings = Settings()
    assert worker_config(settings, Stream.ALERTS, "dedup").window_seconds == 0.02
    assert worker_config(settings, Stream.TICKETS, "store").window_seconds == 0
    monkeypatch.setenv("ALERTDESK_STORE_WINDOW_MS", "5")
    assert worker_config(Settings(), Stream.TICKETS, "store").window_seconds == 0.005


def test_a_holding_dedup_worker_has_room_for_as_many_held_messages_as_alerts_it_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a low rate a message carries one alert: a prefetch below the hold's capacity would let keys go early."""
    from alertdesk.distributed import hold_config, hold_prefetch

    settings = Settings()
    assert hold_config(settings, hold_prefetch(settings)).span >= settings.hold_max == 30_000
    monkeypatch.setenv("ALERTDESK_HOLD_MAX", "100000")
    assert hold_prefetch(Settings()) == 65_535  # RabbitMQ's most
    monkeypatch.setenv("ALERTDESK_HOLD_MAX", "10")
    assert hold_prefetch(Settings()) == 2000  # never below ALERTDESK_PREFETCH
