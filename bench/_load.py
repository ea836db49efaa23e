"""Load generators, pinned to the load core: wrk (HTTP, Lua POST body) and grpc.aio (gRPC)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from _procs import LOAD_CORE

HERE = Path(__file__).resolve().parent


def wrk(
    url: str, body: Path, *, concurrency: int, duration: float, timeout_s: int = 60
) -> dict[str, Any]:
    """One closed-loop wrk run (1 thread, ``concurrency`` keep-alive connections)."""
    argv = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s", "-s", str(HERE / "_wrk_post.lua"), url,
    ]  # fmt: skip
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={"WRK_BODY": str(body), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        timeout=duration + timeout_s + 30,
        check=False,
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            doc = dict(json.loads(line[len("WRKJSON ") :]))
            seconds = doc["duration_us"] / 1e6
            errors = sum(
                doc[k]
                for k in (
                    "status_errors",
                    "connect_errors",
                    "read_errors",
                    "write_errors",
                    "timeouts",
                )
            )
            done = doc["requests"] > 0
            return {
                "req_s": doc["requests"] / seconds if seconds else 0.0,
                "p50_ms": doc["p50_us"] / 1000 if done else math.nan,
                "p99_ms": doc["p99_us"] / 1000 if done else math.nan,
                "requests": doc["requests"],
                "errors": errors,
            }
    raise RuntimeError(f"wrk gave no result for {url}: {out.stdout[-500:]} {out.stderr[-500:]}")


def grpc(
    target: str,
    method: str,
    request_file: Path,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 0.5,
    root_pem: Path | None = None,
) -> dict[str, Any]:
    """One closed-loop grpc.aio run with ``concurrency`` in-flight calls on one channel."""
    cfg = {
        "target": target,
        "method": method,
        "request_file": str(request_file),
        "concurrency": concurrency,
        "duration": duration,
        "warmup": warmup,
        "root_pem": str(root_pem) if root_pem else None,
    }
    out = subprocess.run(
        ["taskset", "-c", LOAD_CORE, sys.executable, str(HERE / "_grpc_load.py"), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=duration + warmup + 180,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"gRPC load failed for {target}: {out.stderr[-800:]}")
    doc = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "req_s": doc["req_s"],
        "p50_ms": doc["p50_us"] / 1000,
        "p99_ms": doc["p99_us"] / 1000,
        "requests": doc["requests"],
        "errors": doc["errors"],
        "error_samples": doc["error_samples"],
        "client_cpu": doc.get("client_cpu", math.nan),
    }
