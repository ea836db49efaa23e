"""Processes of the benchmark: start pinned to a core, wait until ready, always stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVER_CORE = "0"
LOAD_CORE = "1"


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Procs:
    """Starts processes into ``logs``; :meth:`close` (or the context manager) stops them all."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        core: str | None = SERVER_CORE,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log = self.logs / f"{name}.log"
        pinned = ["taskset", "-c", core, *argv] if core is not None else argv
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                pinned,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def wait_file(self, proc: Proc, path: Path, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                with contextlib.suppress(ValueError):
                    proc.info = dict(json.loads(path.read_text()))
                    return proc.info
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{proc.name} not ready after {timeout:.0f} s:\n{proc.tail()}")

    def wait_http(
        self,
        proc: Proc,
        url: str,
        *,
        verify: ssl.SSLContext | bool = False,
        ok: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
        timeout: float = 180,
    ) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
            try:
                resp = httpx.get(url, verify=verify, timeout=5)
                if ok(resp):
                    return
                last = f"HTTP {resp.status_code} {resp.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RuntimeError(f"{proc.name} not ready at {url}: {last}\n{proc.tail()}")

    def stop(self, proc: Proc, timeout: float = 15) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


@contextlib.contextmanager
def procs(logs: Path) -> Iterator[Procs]:
    p = Procs(logs)
    try:
        yield p
    finally:
        p.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
