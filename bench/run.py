"""veil benchmarks (``make bench``): ratios against baselines measured in the same run.

1. Model decryption: ``veil.modelcrypto.decrypt_bytes`` (streaming format, 1 MiB segments) vs a
   one-shot AES-256-GCM decrypt of the same bytes with ``cryptography`` (the raw-cipher baseline).
2. REST ``:predict`` of the digits MLP, batch 1, sequential keep-alive requests: veil over TLS vs
   veil over plaintext HTTP (the cost of confidentiality on the wire).

Writes ``bench/results/latest.json`` and prints a summary. Medians of 3 repetitions, min and max.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.modelcrypto import decrypt_bytes, encrypt_bytes, generate_key, model_associated_data
from veil.testing import train_digits_model

HERE = Path(__file__).resolve().parent
REPS = 3


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_decrypt(size_mib: int = 256) -> dict[str, Any]:
    """GiB/s of veil's streaming decrypt vs one-shot AES-GCM on the same plaintext size."""
    key = generate_key()
    plaintext = os.urandom(size_mib << 20)
    ad = model_associated_data("bench")
    ct = encrypt_bytes(plaintext, key=key, associated_data=ad)
    nonce = os.urandom(12)
    raw_ct = AESGCM(key).encrypt(nonce, plaintext, None)
    veil_rates, raw_rates = [], []
    for _ in range(REPS):
        t = time.perf_counter()
        decrypt_bytes(ct, key=key, associated_data=ad)
        veil_rates.append(size_mib / 1024 / (time.perf_counter() - t))
        t = time.perf_counter()
        AESGCM(key).decrypt(nonce, raw_ct, None)
        raw_rates.append(size_mib / 1024 / (time.perf_counter() - t))
    veil_s, raw_s = _stats(veil_rates), _stats(raw_rates)
    return {
        "size_mib": size_mib,
        "veil_gib_s": veil_s,
        "one_shot_aesgcm_gib_s": raw_s,
        "ratio": veil_s["median"] / raw_s["median"],
    }


def _start(model_dir: Path, work: Path, tls: bool) -> tuple[subprocess.Popen[bytes], int]:
    ready = work / ("tls.ready" if tls else "plain.ready")
    args = [sys.executable, str(HERE / "_server.py"), str(model_dir), str(ready)]
    proc = subprocess.Popen([*args, "--tls"] if tls else args, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("benchmark server did not start")
        time.sleep(0.05)
    return proc, int(json.loads(ready.read_text())["rest_port"])


def _rate(url: str, verify: Any, body: bytes, n: int) -> float:
    with httpx.Client(verify=verify, timeout=30) as http:
        for _ in range(50):  # warm-up
            http.post(url, content=body)
        t = time.perf_counter()
        for _ in range(n):
            resp = http.post(url, content=body)
            if resp.status_code != 200:
                raise RuntimeError(resp.text)
        return n / (time.perf_counter() - t)


def bench_rest(n: int = 1000) -> dict[str, Any]:
    """Requests/s of sequential batch-1 predicts: TLS vs plaintext, same server code."""
    model = train_digits_model()
    body = json.dumps({"instances": model.x_test[:1].tolist()}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "digits" / "1").mkdir(parents=True)
        (work / "digits" / "1" / "model.onnx").write_bytes(model.onnx_bytes)
        plain, plain_port = _start(work / "digits", work, tls=False)
        secure, tls_port = _start(work / "digits", work, tls=True)
        try:
            ctx = ssl.create_default_context(cafile=str(work / "bench-cert.pem"))
            ctx.check_hostname = False
            plain_rates, tls_rates = [], []
            for _ in range(REPS):
                plain_rates.append(
                    _rate(f"http://127.0.0.1:{plain_port}/v1/models/digits:predict", False, body, n)
                )
                tls_rates.append(
                    _rate(f"https://127.0.0.1:{tls_port}/v1/models/digits:predict", ctx, body, n)
                )
        finally:
            for proc in (plain, secure):
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)
    p, s = _stats(plain_rates), _stats(tls_rates)
    return {"requests": n, "plaintext_req_s": p, "tls_req_s": s, "ratio": s["median"] / p["median"]}


def main() -> None:
    quick = "--quick" in sys.argv
    results = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "decrypt": bench_decrypt(64 if quick else 256),
        "rest_predict": bench_rest(300 if quick else 1000),
    }
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    d, r = results["decrypt"], results["rest_predict"]
    print(
        f"decrypt {d['size_mib']} MiB: veil {d['veil_gib_s']['median']:.2f} GiB/s vs one-shot "
        f"AES-GCM {d['one_shot_aesgcm_gib_s']['median']:.2f} GiB/s (ratio {d['ratio']:.2f})"
    )
    print(
        f"REST predict, batch 1, sequential: TLS {r['tls_req_s']['median']:.0f} req/s vs "
        f"plaintext {r['plaintext_req_s']['median']:.0f} req/s (ratio {r['ratio']:.2f})"
    )


if __name__ == "__main__":
    main()
