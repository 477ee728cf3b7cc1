"""Running the real `alertdesk` command as a child process, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from alertdesk.bench.loadgen import Ports

PORTS = Ports()  # one picker for the whole test run: no two servers of it are given the same port


def free_port() -> int:
    return PORTS.take()


class AlertdeskProcess:
    """`alertdesk <command>` in `workdir`, with `env` on top of the test's environment."""

    def __init__(self, workdir: Path, env: Mapping[str, str], command: str = "run") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {**os.environ, **env, "ALERTDESK_PORT": str(self.port)}
        self.command = command
        self.log = workdir / f"alertdesk-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, *, own_group: bool = False) -> AlertdeskProcess:
        """Start and wait for /healthz; `own_group`: in a process group of its own, as at a terminal."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertdesk.cli", self.command],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=log,
                process_group=0 if own_group else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"alertdesk exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"alertdesk did not answer /healthz within {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def children(self) -> list[int]:
        """Pids of the processes it started (for `alertdesk run`: its store writer)."""
        assert self.proc is not None
        return [int(pid) for pid in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def gone(pid: int, timeout: float = 15.0) -> bool:
    """Whether `pid` exited (or is a zombie nobody waits for) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False
