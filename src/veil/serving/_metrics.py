"""Prometheus text exposition with TF Serving's metric names (no secrets, no request data)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

__all__ = ["METRICS_PATH", "Metrics"]

METRICS_PATH = "/monitoring/prometheus/metrics"
# TF Serving's request_latency buckets are in microseconds (exponential, factor 1.8).
_BUCKETS = tuple(int(10 * 1.8**i) for i in range(33))


class Metrics:
    """``:tensorflow:serving:request_count`` and ``:tensorflow:serving:request_latency``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str, str], list[int]] = {}
        self._latency_sum: dict[tuple[str, str, str], float] = defaultdict(float)

    def observe(
        self, model: str, api: str, status: str, seconds: float, *, entrypoint: str = "REST"
    ) -> None:
        """Count one request of ``api`` (e.g. ``Predict``) for ``model`` with ``status``."""
        micros = seconds * 1e6
        with self._lock:
            self._counts[(model, status)] += 1
            key = (model, api, entrypoint)
            buckets = self._latency.setdefault(key, [0] * (len(_BUCKETS) + 1))
            buckets[bisect.bisect_left(_BUCKETS, micros)] += 1
            self._latency_sum[key] += micros

    def render(self) -> bytes:
        """The exposition text."""
        lines = [
            "# TYPE :tensorflow:serving:request_count counter",
        ]
        with self._lock:
            for (model, status), count in sorted(self._counts.items()):
                lines.append(
                    f':tensorflow:serving:request_count{{model_name="{_escape(model)}",'
                    f'status="{status}"}} {count}'
                )
            lines.append("# TYPE :tensorflow:serving:request_latency histogram")
            for (model, api, entrypoint), buckets in sorted(self._latency.items()):
                labels = f'model_name="{_escape(model)}",API="{api}",entrypoint="{entrypoint}"'
                total = 0
                for bound, count in zip((*_BUCKETS, None), buckets, strict=True):
                    total += count
                    le = "+Inf" if bound is None else f"{bound}"
                    lines.append(
                        f':tensorflow:serving:request_latency_bucket{{{labels},le="{le}"}} {total}'
                    )
                lines.append(
                    f":tensorflow:serving:request_latency_sum{{{labels}}} "
                    f"{self._latency_sum[(model, api, entrypoint)]:.0f}"
                )
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {total}")
        return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
