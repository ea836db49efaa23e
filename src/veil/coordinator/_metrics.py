"""Prometheus metrics (text exposition format 0.0.4) and the activation event log.

Written by hand to avoid a dependency: a few counters, one histogram and a gauge. Labels carry
marble types, HTTP methods, route templates and status codes only, never request data.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["EventLog", "Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


class Metrics:
    """Thread-safe counters of the coordinator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._activations: collections.Counter[tuple[str, str]] = collections.Counter()
        self._requests: dict[tuple[str, str, str], list[float]] = {}
        self._buckets: dict[tuple[str, str, str], list[int]] = {}

    def activation(self, marble_type: str, result: str) -> None:
        """Count one activation attempt; ``result`` is ``success`` or a refusal class."""
        with self._lock:
            self._activations[(marble_type, result)] += 1

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one API request's latency."""
        key = (method, route, str(status))
        with self._lock:
            totals = self._requests.setdefault(key, [0.0, 0.0])
            totals[0] += 1
            totals[1] += seconds
            buckets = self._buckets.setdefault(key, [0] * len(LATENCY_BUCKETS))
            for index, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[index] += 1

    def render(self, *, state: int) -> str:
        """The text exposition of every metric."""
        from veil import __version__

        lines = [
            "# HELP veil_coordinator_info The coordinator's version.",
            "# TYPE veil_coordinator_info gauge",
            f"veil_coordinator_info{_labels([('version', __version__)])} 1",
            "# HELP veil_coordinator_state Coordinator state (MarbleRun codes: 1 recovery, "
            "2 accepting manifest, 3 accepting marbles).",
            "# TYPE veil_coordinator_state gauge",
            f"veil_coordinator_state {state}",
            "# HELP veil_coordinator_marble_activations_total Marble activations by type and result.",
            "# TYPE veil_coordinator_marble_activations_total counter",
        ]
        with self._lock:
            for (marble_type, result), count in sorted(self._activations.items()):
                labels = _labels([("type", marble_type), ("result", result)])
                lines.append(f"veil_coordinator_marble_activations_total{labels} {count}")
            lines += [
                "# HELP veil_coordinator_api_request_duration_seconds Client and mesh API latency.",
                "# TYPE veil_coordinator_api_request_duration_seconds histogram",
            ]
            name = "veil_coordinator_api_request_duration_seconds"
            for key in sorted(self._requests):
                method, route, status = key
                base = [("method", method), ("route", route), ("status", status)]
                for bound, count in zip(LATENCY_BUCKETS, self._buckets[key], strict=True):
                    lines.append(f"{name}_bucket{_labels([*base, ('le', str(bound))])} {count}")
                count_total, seconds = self._requests[key]
                lines.append(f"{name}_bucket{_labels([*base, ('le', '+Inf')])} {int(count_total)}")
                lines.append(f"{name}_sum{_labels(base)} {seconds:.6f}")
                lines.append(f"{name}_count{_labels(base)} {int(count_total)}")
        return "\n".join(lines) + "\n"


class EventLog:
    """The most recent activation events (a bounded ring), newest last."""

    def __init__(self, size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def add(self, now: dt.datetime, **fields: Any) -> None:
        """Append an event with its time."""
        with self._lock:
            self._events.append({"time": now.isoformat(), **fields})

    def list(self) -> list[dict[str, Any]]:
        """A copy of the events, oldest first."""
        with self._lock:
            return list(self._events)
