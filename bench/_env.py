"""The benchmark's environment: peers in pinned virtual environments, wrk, machine facts.

Each peer gets its own venv under bench/.peers/<name> (gitignored), made with the system
``python3`` from ``bench/peers/<name>-requirements.txt`` (a full ``pip freeze``, so every run
uses the same versions). A stamp holding the requirements' hash skips reinstalls.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
PEER_VENVS = ("mlserver", "fastapi", "tools")


def _log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def peer_python(name: str) -> Path:
    return PEERS / name / "bin" / "python"


def ensure_peer(name: str) -> Path:
    """Create or reuse bench/.peers/<name> with the pinned requirements; return its python."""
    req = HERE / "peers" / f"{name}-requirements.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    venv = PEERS / name
    stamp = venv / ".bench-stamp"
    if stamp.exists() and stamp.read_text() == digest and peer_python(name).exists():
        return peer_python(name)
    _log(f"installing peer venv {name} (pinned, {req.name}) ...")
    if venv.exists():
        shutil.rmtree(venv)
    PEERS.mkdir(parents=True, exist_ok=True)
    base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(peer_python(name)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(req)],
        check=True,
        stderr=subprocess.DEVNULL if os.environ.get("BENCH_VERBOSE") is None else None,
    )  # fmt: skip
    stamp.write_text(digest)
    return peer_python(name)


def ensure_wrk() -> str:
    """Debian's wrk, installed with apt-get when missing (the bench runs as root)."""
    path = shutil.which("wrk")
    if path:
        return path
    _log("installing wrk with apt-get ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return path


def versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(python), "-c", code, *packages], check=True, capture_output=True, text=True
    )
    import json

    return dict(json.loads(out.stdout))


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, object]:
    cpu = ""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    os_name = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "aes_ni": "aes" in flags,
        "vaes": "vaes" in flags,
        "avx512": any(f.startswith("avx512") for f in flags),
        "memory_gib": round(mem / 2**30, 1),
        "os": os_name,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
        "note": "shared machine: other jobs may run; compare ratios measured in the same run",
    }
