#!/usr/bin/env python3
"""Fuzz every HTTP API of a running deployment with schemathesis (``make fuzz``).

    python scripts/fuzz.py --budget 40        # CI (FUZZ_BUDGET); the whole run stays under 60 s
    python scripts/fuzz.py --budget 400       # the 10x local run

It deploys the walkthrough (coordinator + inference marble, model key uploaded; see soak.py),
then runs schemathesis, each target with its share of ``--budget`` seconds of fuzzing:

* the coordinator client API from the document it publishes at ``/api/v2/openapi.json``, as a
  manifest user with a client certificate (``--request-cert``), and once more anonymously;
* the coordinator mesh API and the inference server's REST API (TF Serving ``/v1``, KServe
  ``/v2``) from the OpenAPI documents in ``tests/security/openapi/`` (the services do not
  publish one yet).

Checks: ``not_a_server_error`` (no 5xx), ``response_schema_conformance`` and
``content_type_conformance`` (no response that breaks its schema), and a request timeout plus a
maximum response time (no hang). After the run every service must still answer its health
check. Exit status 0 when every target is clean, 1 otherwise; reports land in ``--report-dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import Deployment, deploy

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "security" / "openapi"
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def st_binary() -> str:
    candidate = Path(sys.executable).with_name("st")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("st") or shutil.which("schemathesis")
    if found is None:
        raise SystemExit("schemathesis is not installed: pip install schemathesis")
    return found


def schemathesis(
    name: str,
    spec: Path,
    base_url: str,
    *,
    seconds: int,
    root: Path,
    report_dir: Path,
    cert: tuple[Path, Path] | None = None,
    seed: int | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[bool, str]:
    """Run one schemathesis target; return (clean, summary line)."""
    args = [
        st_binary(), "run", str(spec), "--url", base_url, "--checks", CHECKS,
        "--max-time", str(max(1, seconds)), "--request-timeout", "15",
        "--max-response-time", "10", "--tls-verify", str(root), "--workers", "1",
        "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all",
        "--report", "junit,ndjson", "--report-dir", str(report_dir / name),
        "--warnings", "off", "--continue-on-failure", *extra,
    ]  # fmt: skip
    if cert is not None:
        args += ["--request-cert", str(cert[0]), "--request-cert-key", str(cert[1])]
    if seed is not None:
        args += ["--seed", str(seed)]
    started = time.monotonic()
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=seconds + 120, check=False,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    (report_dir / f"{name}.log").write_text(out)
    lines = [line for line in out.splitlines() if line.strip()]
    summary = next((line for line in reversed(lines) if " in " in line and "s" in line), "")
    clean = proc.returncode == 0
    print(f"fuzz: {name}: {'clean' if clean else 'FAILURES'} in {elapsed:.0f} s  {summary.strip()}")
    if not clean:
        tail = "\n".join(lines[-60:])
        print(tail)
    return clean, summary


def healthy(dep: Deployment) -> list[str]:
    problems = []
    with httpx.Client(verify=dep.tls(), timeout=10) as http:
        for name, url in (
            ("coordinator", f"https://{dep.client}/api/v2/status"),
            ("inference", f"https://{dep.rest}/v1/models/digits"),
        ):
            try:
                if http.get(url).status_code != 200:
                    problems.append(f"{name} unhealthy after fuzzing")
            except httpx.HTTPError as exc:
                problems.append(f"{name} unreachable after fuzzing: {exc}")
    for proc in (dep.coordinator, dep.server):
        if proc.popen.poll() is not None:
            problems.append(f"{proc.name} exited during fuzzing ({proc.popen.returncode})")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--budget", type=int, default=int(os.environ.get("FUZZ_BUDGET", "40")),
        help="seconds of fuzzing in all (split between the targets)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report-dir", type=Path, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="veil-fuzz-"))
    report_dir = args.report_dir or work / "reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"fuzz: deploying in {work}", flush=True)
    dep = deploy(work)
    try:
        root = work / "root.pem"
        ctx = ssl.create_default_context(cadata=dep.root_pem.decode())
        ctx.check_hostname = False
        with httpx.Client(verify=ctx, timeout=10) as http:
            doc = http.get(f"https://{dep.client}/api/v2/openapi.json").json()
        client_spec = work / "coordinator-client.openapi.json"
        client_spec.write_text(json.dumps(doc))
        client_url = f"https://localhost:{dep.coordinator.ready['client_port']}"
        mesh_url = f"https://localhost:{dep.coordinator.ready['mesh_port']}"
        rest_url = f"https://localhost:{dep.server.ready['rest_port']}"
        owner = dep.users["owner"]
        shares = {"client-user": 0.3, "client-anonymous": 0.15, "mesh": 0.15, "inference": 0.4}
        targets = [
            ("client-user", client_spec, client_url, owner),
            ("client-anonymous", client_spec, client_url, None),
            ("mesh", SPECS / "coordinator-mesh.json", mesh_url, None),
            ("inference", SPECS / "inference-rest.json", rest_url, None),
        ]
        results = []
        for name, spec, url, cert in targets:
            seconds = max(1, round(args.budget * shares[name]))
            clean, _ = schemathesis(
                name, spec, url, seconds=seconds, root=root, report_dir=report_dir,
                cert=cert, seed=args.seed,
            )  # fmt: skip
            results.append((name, clean))
        problems = healthy(dep)
    finally:
        dep.stop()
    for problem in problems:
        print(f"fuzz: {problem}")
    ok = all(clean for _, clean in results) and not problems
    total = time.monotonic() - started
    verdicts = ", ".join(f"{name}={'clean' if clean else 'failures'}" for name, clean in results)
    print(
        f"fuzz: {'PASS' if ok else 'FAIL'}: {verdicts}; budget {args.budget} s, "
        f"wall {total:.0f} s; reports in {report_dir}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
