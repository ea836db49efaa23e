#!/usr/bin/env python3
"""Soak test: coordinator + inference marble under steady, bounded load on loopback.

    python scripts/soak.py --seconds 600          # make soak (SOAK_SECONDS, default 600)
    python scripts/soak.py --seconds 60 --json out.json

It deploys the walkthrough with the real CLI (simulated TEE, encrypted digits model, model key
uploaded by its owner), then runs a fixed request mix at a bounded rate until the time is up:

* REST predicts over TLS to the marble (keep-alive connections, plus one new TLS connection for
  every 20th request), batch of 8 digits rows, labels checked against plaintext onnxruntime;
* gRPC-free coordinator calls over TLS: status, manifest, quote with a fresh nonce, a secret read
  by a user with ReadSecret, and a marble activation (a bounded MaxActivations-free type).

Every ``--sample`` seconds it records the RSS and open descriptors of both processes and the
latency of every request. After a warm-up (``--warmup``, default 20 % of the run, at least 10 s)
it compares the median RSS of the first three samples with that of the last three.

Pass: zero errors (a non-200 answer, a wrong label or a transport error) and RSS growth below 5 %
for both processes. It also reports the p99 latency of the first and last post-warm-up windows
(drift), and descriptor counts. Exit status 0 on pass, 1 on fail, 2 on setup failure.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from veil.attestation import SimulatedIdentity, SimulatedPlatform, marble_report_data, measure
from veil.modelcrypto import encrypt_bytes, generate_key, model_associated_data
from veil.pki import build_csr, spki_der
from veil.pki import generate_key as generate_marble_key
from veil.testing import train_digits_model

VEIL = [sys.executable, "-m", "veil"]
MODEL = "digits"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- deployment ------------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    ready: dict[str, Any]


def start(d: Path, name: str, *args: str, timeout: float = 90) -> Proc:
    ready_file = d / f"{name}.ready"
    log = d / f"{name}.log"
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            [*VEIL, *args, "--ready-file", str(ready_file)],
            cwd=d,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists():
            return Proc(name, popen, log, json.loads(ready_file.read_text()))
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready in {timeout} s")


def user(d: Path, name: str) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = d / f"{name}.crt", d / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, cert_file.read_text()


@dataclass
class Deployment:
    dir: Path
    coordinator: Proc
    server: Proc
    root_pem: bytes
    users: dict[str, tuple[Path, Path]]
    platform: SimulatedPlatform
    serve_id: bytes
    x: np.ndarray[Any, Any]
    labels: np.ndarray[Any, Any]

    @property
    def client(self) -> str:
        return f"127.0.0.1:{self.coordinator.ready['client_port']}"

    @property
    def mesh(self) -> str:
        return f"127.0.0.1:{self.coordinator.ready['mesh_port']}"

    @property
    def rest(self) -> str:
        return f"127.0.0.1:{self.server.ready['rest_port']}"

    def tls(self, user_name: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.root_pem.decode())
        ctx.check_hostname = False
        if user_name is not None:
            ctx.load_cert_chain(*self.users[user_name])
        return ctx

    def stop(self) -> None:
        for proc in (self.server, self.coordinator):
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in (self.server, self.coordinator):
            try:
                proc.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()


def deploy(d: Path) -> Deployment:
    import onnxruntime as ort

    platform = SimulatedPlatform.create(d / "platform")
    model = train_digits_model()
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"X": model.x_test})[0]
    key = generate_key()
    (d / "models" / MODEL / "1").mkdir(parents=True)
    (d / "models" / MODEL / "1" / "model.onnx.veil").write_bytes(
        encrypt_bytes(model.onnx_bytes, key=key, associated_data=model_associated_data(MODEL))
    )
    coordinator = start(
        d, "coordinator", "coordinator", "run", "--tee", "simulated",
        "--simulated-platform", str(d / "platform"), "--client-addr", "127.0.0.1:0",
        "--mesh-addr", "127.0.0.1:0", "--seal-dir", str(d / "state"),
    )  # fmt: skip
    client = f"127.0.0.1:{coordinator.ready['client_port']}"
    with httpx.Client(verify=False, timeout=30) as http:  # noqa: S501 - only to read the chain
        chain = http.get(f"https://{client}/api/v2/quote").json()["data"]["cert"].encode()
    root_pem = x509.load_pem_x509_certificates(chain)[-1].public_bytes(serialization.Encoding.PEM)
    (d / "root.pem").write_bytes(root_pem)
    users = {name: user(d, name) for name in ("owner", "reader")}
    serve_id = measure("serve")
    manifest = {
        "Packages": {"inference": {"TEE": "simulated", "UniqueID": serve_id.hex(), "Debug": False}},
        "Marbles": {
            "server": {
                "Package": "inference",
                "Parameters": {"Env": {"VEIL_MODEL_KEY": "{{ hex .Secrets.model_key }}"}},
            },
            "probe": {
                "Package": "inference",
                "Parameters": {"Env": {"P": "{{ hex .Secrets.shared }}"}},
            },
        },
        "Secrets": {
            "model_key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
            "shared": {"Type": "symmetric-key", "Size": 256, "Shared": True},
        },
        "Users": {
            "owner": {"Certificate": users["owner"][2], "Roles": ["writer"]},
            "reader": {"Certificate": users["reader"][2], "Roles": ["reader"]},
        },
        "Roles": {
            "writer": {
                "ResourceType": "Secrets",
                "ResourceNames": ["model_key"],
                "Actions": ["WriteSecret"],
            },
            "reader": {
                "ResourceType": "Secrets",
                "ResourceNames": ["shared"],
                "Actions": ["ReadSecret"],
            },
        },
    }
    ctx = ssl.create_default_context(cadata=root_pem.decode())
    ctx.check_hostname = False
    with httpx.Client(verify=ctx, timeout=30) as http:
        resp = http.post(
            f"https://{client}/api/v2/manifest",
            json={"manifest": b64(json.dumps(manifest).encode())},
        )
        resp.raise_for_status()
    server = start(
        d, "server", "serve", "--model_name", MODEL, "--model_base_path", str(d / "models" / MODEL),
        "--port", "0", "--rest_api_port", "0",
        "--coordinator", f"127.0.0.1:{coordinator.ready['mesh_port']}", "--marble-type", "server",
        "--coordinator-cert", str(d / "root.pem"), "--tee", "simulated",
        "--simulated-platform", str(d / "platform"), "--uuid-file", str(d / "server.uuid"),
    )  # fmt: skip
    dep = Deployment(
        d, coordinator, server, root_pem,
        {n: (u[0], u[1]) for n, u in users.items()}, platform, serve_id, model.x_test, labels,
    )  # fmt: skip
    with httpx.Client(verify=dep.tls("owner"), timeout=30) as http:
        http.post(
            f"https://{client}/api/v2/secrets", json={"secrets": {"model_key": {"Key": b64(key)}}}
        ).raise_for_status()
    deadline = time.monotonic() + 60
    with httpx.Client(verify=dep.tls(), timeout=30) as http:
        while time.monotonic() < deadline:
            resp = http.get(f"https://{dep.rest}/v1/models/{MODEL}")
            if resp.status_code == 200 and "AVAILABLE" in resp.text:
                return dep
            time.sleep(0.1)
    raise RuntimeError("the model never became available")


# -- load ------------------------------------------------------------------------------------------
@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (t, kind, seconds)
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, started: float, error: str | None = None) -> None:
        now = time.monotonic()
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.latencies.append((now, kind, now - started))
            if error is not None and len(self.errors) < 200:
                self.errors.append(f"{kind}: {error}")


class Paced:
    """Calls ``fn`` at ``rate`` per second (absolute schedule: no drift, no bursts beyond 1 s)."""

    def __init__(self, rate: float, fn: Callable[[], None], stop: threading.Event) -> None:
        self.rate, self.fn, self.stop = rate, fn, stop

    def run(self) -> None:
        interval = 1 / self.rate
        due = time.monotonic()
        while not self.stop.is_set():
            self.fn()
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            elif delay < -1:
                due = time.monotonic()


def predict_worker(dep: Deployment, stats: Stats, seed: int) -> Callable[[], None]:
    rng = np.random.default_rng(seed)
    state = {"n": 0, "http": httpx.Client(verify=dep.tls(), timeout=30)}

    def call() -> None:
        state["n"] += 1
        if state["n"] % 20 == 0:  # a fresh TLS connection now and then
            state["http"].close()
            state["http"] = httpx.Client(verify=dep.tls(), timeout=30)
        rows = rng.integers(0, len(dep.x), 8)
        started = time.monotonic()
        try:
            resp = state["http"].post(
                f"https://{dep.rest}/v1/models/{MODEL}:predict",
                json={"instances": dep.x[rows].tolist()},
            )
            if resp.status_code != 200:
                stats.record("predict", started, f"HTTP {resp.status_code} {resp.text[:200]}")
                return
            got = [int(p["label"]) for p in resp.json()["predictions"]]
            if got != [int(v) for v in dep.labels[rows]]:
                stats.record("predict", started, f"wrong labels {got}")
                return
            stats.record("predict", started)
        except httpx.HTTPError as exc:
            stats.record("predict", started, f"{type(exc).__name__}: {exc}")

    return call


def coordinator_worker(dep: Deployment, stats: Stats) -> Callable[[], None]:
    anon = httpx.Client(base_url=f"https://{dep.client}", verify=dep.tls(), timeout=30)
    reader = httpx.Client(base_url=f"https://{dep.client}", verify=dep.tls("reader"), timeout=30)
    mesh = httpx.Client(base_url=f"https://{dep.mesh}", verify=dep.tls(), timeout=30)
    counter = {"n": 0}

    def activation() -> httpx.Response:
        key = generate_marble_key()
        marble_uuid = str(uuidlib.uuid4())
        csr = build_csr(key, common_name=marble_uuid, dns_names=["localhost"])
        evidence = dep.platform.issue(
            SimulatedIdentity(unique_id=dep.serve_id),
            marble_report_data(spki_der(key.public_key())),
        )
        body = {"marbleType": "probe", "uuid": marble_uuid, "csr": b64(csr),
                "evidence": b64(evidence.raw), "tee": "simulated"}  # fmt: skip
        return mesh.post("/api/v2/marble/activate", json=body)

    calls: list[tuple[str, Callable[[], httpx.Response]]] = [
        ("status", lambda: anon.get("/api/v2/status")),
        ("manifest", lambda: anon.get("/api/v2/manifest")),
        (
            "quote",
            lambda: anon.get(
                "/api/v2/quote",
                params={
                    "nonce": b64(os.urandom(32)).replace("+", "-").replace("/", "_").rstrip("=")
                },
            ),
        ),
        ("secret-read", lambda: reader.get("/api/v2/secrets", params={"s": "shared"})),
        ("activate", activation),
    ]

    def call() -> None:
        kind, fn = calls[counter["n"] % len(calls)]
        counter["n"] += 1
        started = time.monotonic()
        try:
            resp = fn()
            if resp.status_code != 200:
                stats.record(kind, started, f"HTTP {resp.status_code} {resp.text[:200]}")
            else:
                stats.record(kind, started)
        except httpx.HTTPError as exc:
            stats.record(kind, started, f"{type(exc).__name__}: {exc}")

    return call


# -- measurement -----------------------------------------------------------------------------------
def rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run(args: argparse.Namespace) -> int:
    d = Path(tempfile.mkdtemp(prefix="veil-soak-"))
    print(f"soak: deploying in {d}", flush=True)
    try:
        dep = deploy(d)
    except Exception as exc:  # noqa: BLE001 - report any setup failure and exit 2
        print(f"soak: setup failed: {exc}", file=sys.stderr)
        return 2
    procs = {"coordinator": dep.coordinator.popen.pid, "server": dep.server.popen.pid}
    stats = Stats()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=Paced(
                args.predict_rate / args.predict_workers, predict_worker(dep, stats, i), stop
            ).run,
            daemon=True,
        )
        for i in range(args.predict_workers)
    ]
    threads.append(
        threading.Thread(
            target=Paced(args.coordinator_rate, coordinator_worker(dep, stats), stop).run,
            daemon=True,
        )
    )
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    warmup = max(10.0, args.seconds * args.warmup)
    print(
        f"soak: {args.seconds:.0f} s, warm-up {warmup:.0f} s, {args.predict_rate:g} predicts/s over "
        f"{args.predict_workers} connections, {args.coordinator_rate:g} coordinator calls/s",
        flush=True,
    )
    for thread in threads:
        thread.start()
    try:
        while (elapsed := time.monotonic() - t0) < args.seconds:
            for name, pid in procs.items():
                if Path(f"/proc/{pid}").exists() is False:
                    stats.errors.append(f"{name} died")
                    stop.set()
            samples.append(
                {
                    "t": elapsed,
                    **{f"{n}_rss": rss(p) for n, p in procs.items()},
                    **{f"{n}_fds": fds(p) for n, p in procs.items()},
                }
            )
            if stop.is_set():
                break
            time.sleep(min(args.sample, args.seconds - elapsed))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        samples.append(
            {
                "t": time.monotonic() - t0,
                **{f"{n}_rss": rss(p) for n, p in procs.items()},
                **{f"{n}_fds": fds(p) for n, p in procs.items()},
            }
        )
        dep.stop()
    return report(args, d=d, stats=stats, samples=samples, warmup=warmup, t0=t0)


def report(
    args: argparse.Namespace,
    *,
    d: Path,
    stats: Stats,
    samples: list[dict[str, Any]],
    warmup: float,
    t0: float,
) -> int:
    after = [s for s in samples if s["t"] >= warmup]
    if len(after) < 6:
        after = samples[len(samples) // 2 :]
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "warmup_seconds": warmup,
        "requests": dict(stats.counts),
        "total_requests": sum(stats.counts.values()),
        "errors": len(stats.errors),
        "first_errors": stats.errors[:10],
    }
    ok = not stats.errors
    for name in ("coordinator", "server"):
        first = statistics.median(s[f"{name}_rss"] for s in after[:3])
        last = statistics.median(s[f"{name}_rss"] for s in after[-3:])
        growth = (last - first) / first * 100
        result[f"{name}_rss_mib"] = {
            "after_warmup": round(first / 2**20, 1),
            "end": round(last / 2**20, 1),
        }
        result[f"{name}_rss_growth_pct"] = round(growth, 2)
        result[f"{name}_fds"] = {"start": samples[0][f"{name}_fds"], "after_warmup": after[0][f"{name}_fds"],
                                 "end": samples[-2][f"{name}_fds"] if len(samples) > 1 else None}  # fmt: skip
        ok = ok and growth < args.max_rss_growth
    window = max(10.0, (args.seconds - warmup) / 5)
    for kind in ("predict", "coordinator"):

        def lat(lo: float, hi: float, kind: str = kind) -> list[float]:
            return [
                s for (t, k, s) in stats.latencies
                if lo <= t - t0 < hi and ((k == "predict") == (kind == "predict"))
            ]  # fmt: skip

        first_w, last_w = lat(warmup, warmup + window), lat(args.seconds - window, args.seconds + 1)
        result[f"{kind}_p99_ms"] = {
            "first_window": round(p99(first_w) * 1000, 2),
            "last_window": round(p99(last_w) * 1000, 2),
            "whole_run": round(p99(lat(warmup, args.seconds + 1)) * 1000, 2),
        }
        if first_w and last_w:
            result[f"{kind}_p99_drift_pct"] = round((p99(last_w) / p99(first_w) - 1) * 100, 1)
    result["pass"] = ok
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"soak: {'PASS' if ok else 'FAIL'} (logs in {d})", flush=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "600"))
    )
    parser.add_argument("--predict-rate", type=float, default=40.0, help="predicts per second")
    parser.add_argument("--predict-workers", type=int, default=4, help="concurrent connections")
    parser.add_argument("--coordinator-rate", type=float, default=10.0, help="coordinator calls/s")
    parser.add_argument("--sample", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="percent")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    socket.setdefaulttimeout(60)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
