"""Helpers that drive the real ``veil`` CLI in subprocesses on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

VEIL = [sys.executable, "-m", "veil"]


def veil(*args: str | Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion."""
    proc = subprocess.run(
        [*VEIL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"veil {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@dataclass
class Services:
    """Background processes started by a test; ``stop()`` ends them all."""

    workdir: Path
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, *args: str | Path) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                [*VEIL, *map(str, args)], cwd=self.workdir, stdout=fh, stderr=subprocess.STDOUT
            )
        self.procs.append((popen, log))
        return popen

    def wait_ready(self, popen: subprocess.Popen[bytes], ready: Path, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists():
                return json.loads(ready.read_text())
            if popen.poll() is not None:
                raise AssertionError(f"process exited early: {self.logs()}")
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs)

    def stop(self) -> None:
        for popen, _ in self.procs:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen, _ in self.procs:
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def wait_model_state(rest: str, root_pem: Path, model: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the TF Serving status endpoint until some version is no longer LOADING/START."""
    import ssl

    ctx = ssl.create_default_context(cafile=str(root_pem))
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    with httpx.Client(verify=ctx, timeout=10) as http:
        while time.monotonic() < deadline:
            resp = http.get(f"https://{rest}/v1/models/{model}")
            if resp.status_code == 200:
                last = resp.json()
                states = {s["state"] for s in last["model_version_status"]}
                if states & {"AVAILABLE", "END"}:
                    return last
            time.sleep(0.1)
    raise AssertionError(f"model {model} did not settle: {last}")


def env_without_debug() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VEIL_COORDINATOR_ADDR", None)
    return env
