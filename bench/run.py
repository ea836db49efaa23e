"""veil benchmarks against its peers, in one run: ``make bench`` (full) / ``make bench-quick``.

Installs the peers in pinned virtual environments (bench/.peers/), wrk with apt-get, builds the
models offline (bench/work/), runs the scenarios of issue 7, writes ``bench/results/latest.json``
(raw figures, versions, machine, date, ``ratios``), plots, and regenerates ``BENCHMARKS.md``.

Fairness: every server is one process pinned to core 0 (``taskset``), every load generator is
pinned to core 1; warm-up first, then ≥3 interleaved repetitions, medians with min and max; the
same model files and the same request bytes for every server. Absolute numbers on this shared
machine are noisy: read the ratios, which compare figures measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
RESULTS = HERE / "results"


def _snapshot_veil() -> str:
    """Copy src/veil to bench/work/snapshot and run every veil process from that copy.

    The working tree may change during a 20-minute run (and the simulated TEE measures every
    veil source file): a frozen copy keeps the coordinator's expected measurement, the marbles'
    own measurement and the code under test identical for the whole run.
    """
    import hashlib
    import shutil

    target = WORK / "snapshot"
    check = "import veil.cli, veil.serving, veil.runtime, veil.coordinator.server, veil.client"
    for attempt in range(12):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            HERE.parent / "src" / "veil",
            target / "veil",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        probe = subprocess.run(
            [sys.executable, "-c", check],
            env={**os.environ, "PYTHONPATH": str(target)},
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            break
        print(
            f"[bench] the veil source tree does not import yet (attempt {attempt + 1}; someone "
            f"may be mid-edit): {probe.stderr.strip().splitlines()[-1:]}; retrying in 10 s",
            flush=True,
        )
        time.sleep(10)
    else:
        raise SystemExit("bench: src/veil does not import; fix the tree and rerun")
    digest = hashlib.sha256()
    for path in sorted((target / "veil").rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(target).as_posix().encode() + path.read_bytes())
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = str(target)
    return digest.hexdigest()


VEIL_SOURCE_SHA256 = _snapshot_veil()
sys.path.insert(0, str(HERE))

import logging  # noqa: E402 - after the snapshot, like every import below

import _control  # noqa: E402
import _crypto  # noqa: E402
import _deploy  # noqa: E402
import _env  # noqa: E402
import _models  # noqa: E402
import _profile  # noqa: E402
import _report  # noqa: E402
from _procs import procs  # noqa: E402
from _serving import TFS_GRPC_METHOD, V2_GRPC_METHOD, Target, grpc_target, rest_target, sweep  # noqa: E402

from veil.modelcrypto import encrypt_bytes, model_associated_data  # noqa: E402

logging.getLogger("veil").setLevel(logging.ERROR)  # the bench's own verifications stay quiet

QUICK = {
    "mode": "quick",
    "reps": 3,
    "digits_conc": [32],
    "resnet_conc": [8],
    "digits_s": 2.0,
    "resnet_s": 3.0,
    "warmup_s": 1.0,
    "activation_levels": [1, 10, 100],
    "activation_reps": 3,
    "openssl_s": 1,
    "crypto_reps": 3,
    "coord_reps": 3,
    "coord_calls": 10,
    "dcap_calls": 20,
    "profile_s": 4,
    "breakdown_reps": 1,
}
FULL = {
    **QUICK,
    "mode": "full",
    "digits_conc": [1, 8, 32, 128],
    "resnet_conc": [1, 8],
    "digits_s": 4.0,
    "resnet_s": 5.0,
    "warmup_s": 2.0,
    "activation_reps": 5,
    "openssl_s": 3,
    "coord_calls": 30,
    "dcap_calls": 100,
    "profile_s": 6,
    "breakdown_reps": 3,
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def big_model(work: Path, key: bytes) -> Path:
    """bench/work/models-enc/big: the ~1 GB model, encrypted (its plaintext never hits disk)."""
    base = work / "models-enc" / "big"
    target = base / "1" / "model.onnx.veil"
    stamp = base / "key.sha"
    import hashlib

    digest = hashlib.sha256(key).hexdigest()
    if not target.exists() or not stamp.exists() or stamp.read_text() != digest:
        log("building and encrypting the 1 GB model ...")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = _models.big_model_bytes()
        target.write_bytes(
            encrypt_bytes(data, key=key, associated_data=model_associated_data("big"))
        )
        stamp.write_text(digest)
    return base


def model_key(work: Path) -> Path:
    path = work / "model.key"
    if not path.exists():
        path.write_bytes(os.urandom(32))
    return path


def bodies(model: _models.BenchModel, work: Path) -> dict[str, Path]:
    d = work / "bodies"
    d.mkdir(parents=True, exist_ok=True)
    out = {
        "v2": d / f"{model.name}-v2.json",
        "tfs": d / f"{model.name}-tfs.json",
        "tfs_grpc": d / f"{model.name}-tfs.bin",
    }
    out["v2"].write_bytes(_models.v2_json(model))
    out["tfs"].write_bytes(_models.tfs_json(model))
    out["tfs_grpc"].write_bytes(_models.tfs_grpc(model))
    out["v2_grpc"] = _deploy.mlserver_grpc_request(model, work)
    return out


def serving(cfg: dict[str, Any], results: dict[str, Any]) -> None:
    """Scenarios 1 and 2 (+ the marble key-to-first-prediction and the profile)."""
    key_file = model_key(WORK)
    key = key_file.read_bytes()
    models = {"digits": _models.digits(WORK), "resnet50": _models.resnet50(WORK)}
    with procs(WORK / "logs") as p:
        log("coordinator + manifest; marbles for digits and resnet50 (simulated TEE) ...")
        coord = _deploy.coordinator(p, WORK)
        marbles = {}
        for name, m in models.items():
            base = _deploy.encrypted_copy(m, WORK, key)
            marbles[name] = _deploy.start_marble(p, WORK, coord, name, base)
        body = {name: bodies(m, WORK) for name, m in models.items()}
        log("owner uploads the model key; timing key → first prediction on each marble ...")
        results["key_to_first_prediction_marble_s"] = _deploy.key_to_first_prediction(
            coord, key, {n: (marbles[n], body[n]["v2"].read_bytes()) for n in models}
        )
        results["rest"], results["grpc"] = {}, {}
        for name, m in models.items():
            conc = cfg["digits_conc"] if name == "digits" else cfg["resnet_conc"]
            seconds = cfg["digits_s"] if name == "digits" else cfg["resnet_s"]
            log(f"{name}: starting veil plaintext, MLServer, FastAPI (core 0) ...")
            tls = marbles[name]
            plain = _deploy.start_veil_plain(p, WORK, m)
            mls = _deploy.start_mlserver(p, WORK, m)
            fast = _deploy.start_fastapi(p, WORK, m)
            v2 = f"/v2/models/{name}/infer"
            rest_targets = [
                rest_target("veil-tls", tls.rest + v2, body[name]["v2"]),
                rest_target("veil-plain", plain.rest + v2, body[name]["v2"]),
                rest_target("mlserver", mls.rest + v2, body[name]["v2"]),
                rest_target("fastapi", fast.rest + v2, body[name]["v2"]),
                rest_target(
                    "veil-tls-tfs-predict",
                    f"{tls.rest}/v1/models/{name}:predict",
                    body[name]["tfs"],
                ),
            ]
            log(f"{name}: REST sweep c={conc}, {cfg['reps']} reps x {seconds:g} s ...")
            warm_c = 8 if name == "digits" else 2
            results["rest"][name] = sweep(
                rest_targets, conc, reps=cfg["reps"], duration=seconds,
                warmup=cfg["warmup_s"], warmup_concurrency=warm_c, log=log,
            )  # fmt: skip
            assert tls.grpc
            assert plain.grpc
            assert mls.grpc
            grpc_targets = [
                grpc_target(
                    "veil-tls", tls.grpc, TFS_GRPC_METHOD, body[name]["tfs_grpc"], tls.root_pem
                ),
                grpc_target("veil-plain", plain.grpc, TFS_GRPC_METHOD, body[name]["tfs_grpc"]),
                grpc_target("mlserver", mls.grpc, V2_GRPC_METHOD, body[name]["v2_grpc"]),
            ]
            log(f"{name}: gRPC sweep c={conc} ...")
            results["grpc"][name] = sweep(
                grpc_targets, conc, reps=cfg["reps"], duration=seconds,
                warmup=cfg["warmup_s"], warmup_concurrency=warm_c, log=log,
            )  # fmt: skip
            if name == "digits":
                log("digits: profiling veil-tls under REST and gRPC load at c=32 (py-spy) ...")
                results["profile"] = results.get("profile") or {}
                results["profile"] |= _profiles(
                    cfg["profile_s"], tls, fast, rest_targets, grpc_targets
                )
            for ep in (plain, mls, fast):
                p.stop(ep.proc)


def _profiles(
    secs: int,
    tls: _deploy.Endpoint,
    fast: _deploy.Endpoint,
    rest_targets: list[Target],
    grpc_targets: list[Target],
) -> dict[str, Any]:
    """py-spy profiles of veil-tls (REST, gRPC) and FastAPI (REST) at c=32."""
    return {
        "rest_veil_tls_c32": _profile.profile_during(
            tls.proc.pid, WORK / "profile-rest.txt", secs, lambda: rest_targets[0].run(32, secs - 1)
        ),
        "grpc_veil_tls_c32": _profile.profile_during(
            tls.proc.pid, WORK / "profile-grpc.txt", secs, lambda: grpc_targets[0].run(32, secs - 1)
        ),
        "rest_fastapi_c32": _profile.profile_during(
            fast.proc.pid,
            WORK / "profile-fastapi.txt",
            secs,
            lambda: rest_targets[3].run(32, secs - 1),
        ),
    }


def crypto(cfg: dict[str, Any], results: dict[str, Any]) -> None:
    """Scenario 3: decrypt 100 MB and 1 GB vs openssl speed; key → first prediction."""
    key_file = model_key(WORK)
    key = key_file.read_bytes()
    reps = cfg["crypto_reps"]
    resnet = _models.resnet50(WORK)
    resnet_base = _deploy.encrypted_copy(resnet, WORK, key)
    big_base = big_model(WORK, key)
    log("openssl speed -evp aes-256-gcm, 16 KiB, one core (decrypt and encrypt) ...")
    s = cfg["openssl_s"]
    results["openssl"] = {
        "version": _env.tool_version(["openssl", "version"]),
        "decrypt_16k_gb_s": _serving_stats(
            [_crypto.openssl_speed(decrypt=True, seconds=s) for _ in range(reps)]
        ),
        "encrypt_16k_gb_s": _serving_stats(
            [_crypto.openssl_speed(decrypt=False, seconds=s) for _ in range(reps)]
        ),
    }
    log("cryptography: 1 MiB chunks into a preallocated buffer (100 MB) ...")
    results["cryptography_stream_gb_s"] = _serving_stats(
        _crypto.cryptography_stream(100_000_000, reps)
    )
    log("veil decrypt: 100 MB (resnet50) and 1 GB models ...")
    results["decrypt"] = {
        "100mb": _crypto.decrypt_rates(
            resnet_base / "1" / "model.onnx.veil", "resnet50", key, reps
        ),
        "1gb": _crypto.decrypt_rates(big_base / "1" / "model.onnx.veil", "big", key, reps),
    }
    big_body = WORK / "bodies" / "big-v2.json"
    big_body.parent.mkdir(parents=True, exist_ok=True)
    import numpy as np

    x = np.random.default_rng(1).random((1, 8192), dtype=np.float32)
    big_body.write_bytes(_models.v2_json(_models.BenchModel("big", Path(), "X", x)))
    resnet_body = WORK / "bodies" / "resnet50-v2.json"
    resnet_body.write_bytes(_models.v2_json(resnet))
    log("load breakdown of the 1 GB model (read, allocate, decrypt, copy, ORT session) ...")
    results["load_breakdown_1gb_s"] = _crypto.load_breakdown(
        big_base / "1" / "model.onnx.veil", "big", key, cfg["breakdown_reps"]
    )
    log("key → first prediction in one server process: 100 MB and 1 GB ...")
    results["key_to_first_prediction"] = {
        "100mb": _crypto.key_to_first_prediction(
            resnet_base, "resnet50", key_file, resnet_body, reps
        ),
        "1gb": _crypto.key_to_first_prediction(big_base, "big", key_file, big_body, reps),
    }
    log("py-spy over one 1 GB key → first prediction ...")
    results["profile"] = results.get("profile") or {}
    results["profile"]["key_load_1gb"] = _crypto.profile_key_load(
        big_base, "big", key_file, big_body, WORK / "profile-keyload.txt"
    )


def _serving_stats(values: list[float]) -> dict[str, float]:
    from _serving import stats

    return stats(values)


def control(cfg: dict[str, Any], results: dict[str, Any]) -> None:
    """Scenarios 4 and 5."""
    vectors = Path(os.environ.get("BENCH_VECTORS", HERE.parent.parent / "shared" / "vectors"))
    log("DCAP verification of a real SGX quote, collateral in memory ...")
    results["dcap"] = _control.dcap_verify(vectors, cfg["reps"], cfg["dcap_calls"])
    log("fsync latency of the disk under bench/work (the coordinator commits with fsync) ...")
    results["fsync_ms"] = _control.fsync_latency(WORK / "fsync-probe", cfg["reps"], 50)
    with procs(WORK / "logs") as p:
        log(f"activation: {cfg['activation_levels']} concurrent marbles ...")
        coord = _deploy.coordinator(p, WORK, "coordinator-activation")
        results["activation"] = _control.activation(
            coord, WORK, cfg["activation_levels"], cfg["activation_reps"]
        )
        log("profiling the coordinator during 100 concurrent activations (py-spy) ...")
        results["profile"] = results.get("profile") or {}
        results["profile"]["coordinator_activation_100"] = _profile.profile_during(
            coord.proc.pid, WORK / "profile-activation.txt", cfg["profile_s"],
            lambda: _control.activation(coord, WORK / "profiled", [100], 2),
        )  # fmt: skip
        p.stop(coord.proc)
        log("coordinator operations ...")
        results["coordinator"] = _control.coordinator_ops(
            p, WORK, cfg["coord_reps"], cfg["coord_calls"]
        )


def _render(results: dict[str, Any], out: Path) -> None:
    plots = subprocess.run(
        [str(_env.peer_python("tools")), str(HERE / "_plots.py"), str(out), str(RESULTS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if plots.returncode != 0:
        log(f"plots failed: {plots.stderr[-500:]}")
    _report.write_markdown(results, HERE.parent / "BENCHMARKS.md", RESULTS)
    log("regenerated BENCHMARKS.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (a few minutes)")
    parser.add_argument(
        "--only", choices=["serving", "crypto", "control"], action="append",
        help="run only these scenario groups (for development; BENCHMARKS.md is not rewritten)",
    )  # fmt: skip
    parser.add_argument(
        "--render", action="store_true",
        help="only redraw the plots and BENCHMARKS.md from bench/results/latest.json",
    )  # fmt: skip
    args = parser.parse_args()
    if args.render:
        results = json.loads((RESULTS / "latest.json").read_text())
        results["ratios"], results["targets"] = _report.ratios_and_targets(results)
        _render(results, RESULTS / "latest.json")
        print(_report.summary(results))
        return
    cfg = QUICK if args.quick else FULL
    started = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log(f"mode {cfg['mode']}: preparing peers and wrk ...")
    for name in _env.PEER_VENVS:
        _env.ensure_peer(name)
    _env.ensure_wrk()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "mode": cfg["mode"],
        "config": cfg,
        "machine": _env.machine(),
        "veil_source_sha256": VEIL_SOURCE_SHA256,
        "versions": {
            "veil": _env.versions(Path(sys.executable), ["veil", "onnxruntime", "uvicorn", "starlette", "grpcio", "cryptography"]),
            "mlserver": _env.versions(_env.peer_python("mlserver"), ["mlserver", "onnxruntime", "fastapi", "uvicorn", "uvloop", "grpcio"]),
            "fastapi_service": _env.versions(_env.peer_python("fastapi"), ["fastapi", "uvicorn", "uvloop", "httptools", "onnxruntime", "orjson"]),
            "wrk": _env.tool_version(["wrk", "-v"]),
            "openssl": _env.tool_version(["openssl", "version"]),
            "tools": _env.versions(_env.peer_python("tools"), ["matplotlib", "py-spy"]),
        },
        "errors": {},
    }  # fmt: skip
    groups = args.only or ["serving", "crypto", "control"]
    for group, fn in (("serving", serving), ("crypto", crypto), ("control", control)):
        if group not in groups:
            continue
        try:
            fn(cfg, results)
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others
            traceback.print_exc()
            results["errors"][group] = f"{type(exc).__name__}: {exc}"[:2000]
    results["duration_s"] = time.time() - started
    results["ratios"], results["targets"] = _report.ratios_and_targets(results)
    out = RESULTS / ("latest.json" if not args.only else "partial.json")
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(out)
    log(f"wrote {out.relative_to(HERE.parent)}")
    if not args.only:
        _render(results, out)
    print(_report.summary(results))
    log(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
