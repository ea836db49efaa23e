"""Scenarios 1 and 2: REST and gRPC predict, concurrency sweeps, every server in the same run.

Repetitions interleave the servers (rep → concurrency → server), so that load from other jobs
on this shared machine falls on all of them alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _load

TFS_GRPC_METHOD = "/tensorflow.serving.PredictionService/Predict"
V2_GRPC_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def stats(values: list[float]) -> dict[str, float]:
    """Median, min and max; NaN entries (a run with no completed request) are left out."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass(frozen=True)
class Target:
    """One (server, protocol) to sweep: ``run(concurrency, duration)`` returns one measurement."""

    label: str
    run: Callable[[int, float], dict[str, Any]]


def rest_target(label: str, url: str, body: Path) -> Target:
    return Target(label, lambda c, d: _load.wrk(url, body, concurrency=c, duration=d))


def grpc_target(
    label: str, target: str, method: str, request: Path, root_pem: Path | None = None
) -> Target:
    return Target(
        label,
        lambda c, d: _load.grpc(
            target, method, request, concurrency=c, duration=d, root_pem=root_pem
        ),
    )


def sweep(
    targets: list[Target],
    concurrencies: list[int],
    *,
    reps: int,
    duration: float,
    warmup: float,
    warmup_concurrency: int = 8,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Warm every target up, then ``reps`` interleaved rounds; medians with min and max."""
    for t in targets:
        t.run(warmup_concurrency, warmup)
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {
        t.label: {c: [] for c in concurrencies} for t in targets
    }
    for rep in range(reps):
        for c in concurrencies:
            for t in targets:
                m = t.run(c, duration)
                raw[t.label][c].append(m)
                log(
                    f"  rep {rep + 1} c={c:<3} {t.label:<22} {m['req_s']:8.1f} req/s  "
                    f"p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:7.2f} ms"
                    + (f"  ERRORS {m['errors']}" if m["errors"] else "")
                )
    out: dict[str, Any] = {}
    for label, by_c in raw.items():
        out[label] = {
            str(c): {
                "req_s": stats([m["req_s"] for m in runs]),
                "p99_ms": stats([m["p99_ms"] for m in runs]),
                "p50_ms": stats([m["p50_ms"] for m in runs]),
                "errors": sum(m["errors"] for m in runs),
                "empty_runs": sum(1 for m in runs if not m["requests"]),
                "client_cpu": stats([m.get("client_cpu", math.nan) for m in runs]),
                "runs": runs,
            }
            for c, runs in by_c.items()
        }
    return out
