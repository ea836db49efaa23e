"""Where a server spends its time under load: py-spy (sampling, native stacks off) → summary."""

from __future__ import annotations

import collections
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _env import peer_python

# Buckets are matched against every frame of a sample (inclusive time), first match wins per
# bucket; a sample can count in several buckets.
BUCKETS: list[tuple[str, re.Pattern[str]]] = [
    ("TLS (ssl / asyncio sslproto)", re.compile(r"sslproto\.py|[(/]ssl\.py|_ssl")),
    ("HTTP/1.1 parsing (h11)", re.compile(r"[(/]h11/")),
    ("uvicorn protocol", re.compile(r"uvicorn/protocols")),
    ("Starlette routing / responses", re.compile(r"starlette/")),
    (
        "JSON → tensor (veil _json_tensors / json / orjson)",
        re.compile(r"_json_tensors|[(/]json/|orjson"),
    ),
    (
        "veil REST handlers (_rest_kserve / _rest_tfs / _http)",
        re.compile(r"_rest_kserve|_rest_tfs|serving/_http"),
    ),
    ("veil dataplane", re.compile(r"serving/_dataplane")),
    ("ONNX Runtime run", re.compile(r"onnxruntime|serving/_onnx")),
    ("gRPC (grpc.aio)", re.compile(r"[(/]grpc/")),
    ("logging", re.compile(r"[(/]logging/|veil/_logging")),
    ("asyncio event loop", re.compile(r"asyncio/(base_events|events|selector_events)")),
    ("attestation: verify evidence", re.compile(r"veil/attestation/")),
    ("PKI: sign certificates / CSRs", re.compile(r"veil/pki/")),
    ("coordinator service / core", re.compile(r"veil/coordinator/(service|core|_activation)")),
    ("coordinator store", re.compile(r"veil/coordinator/store/|sqlite3")),
    ("cryptography (X.509, ECDSA, AEAD)", re.compile(r"cryptography/")),
]


def _frame_name(frame: str, *, keep_lines: bool = False) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    m = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not m:
        return frame
    func, path = m.group(1), m.group(2)
    short = "/".join(Path(path).parts[-2:])
    return f"{func} ({short}:{m.group(3)})" if keep_lines else f"{func} ({short})"


def summarise(raw: Path, top: int = 12, *, keep_lines: bool = False) -> dict[str, Any]:
    total = 0
    self_time: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[str] = collections.Counter()
    by_layer: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_time[_frame_name(frames[-1], keep_lines=keep_lines)] += count
        for name, pattern in BUCKETS:
            if any(pattern.search(f) for f in frames):
                buckets[name] += count
        layer = "other (interpreter, click, threads)"
        for frame in reversed(frames):  # the innermost frame that belongs to a layer
            hit = next((name for name, pattern in BUCKETS if pattern.search(frame)), None)
            if hit:
                layer = hit
                break
        by_layer[layer] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "self_by_layer_pct": {k: round(100 * v / total, 1) for k, v in by_layer.most_common()},
        "inclusive_pct": {k: round(100 * v / total, 1) for k, v in buckets.most_common()},
        "top_self_pct": [
            [name, round(100 * v / total, 1)] for name, v in self_time.most_common(top)
        ],
    }


def profile_during(pid: int, out: Path, seconds: float, load: Callable[[], Any]) -> dict[str, Any]:
    """Run ``load()`` while py-spy samples ``pid``; return the summary (or why there is none)."""
    py_spy = peer_python("tools").parent / "py-spy"
    if not py_spy.exists():
        return {"error": "py-spy is not installed in bench/.peers/tools"}
    argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    result: dict[str, Any] = {}

    def run_spy() -> None:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        result["rc"] = proc.returncode
        result["stderr"] = proc.stderr[-500:]

    spy = threading.Thread(target=run_spy)
    spy.start()
    load()
    spy.join()
    if not out.exists():
        return {"error": f"py-spy failed (rc {result.get('rc')}): {result.get('stderr')}"}
    return summarise(out)
