"""Secret hygiene: no secret value in logs, error bodies, metrics, process environments, or any
file outside the coordinator's sealed store.

The secrets: the model key (raw, hex, base64), the users' private keys (PEM, DER, the scalar) and
the coordinator's root key and data key (read for the test by unsealing the store with the
simulated platform, a privilege only the TEE has). Each is searched in every encoding a careless
log line or error message would use.
"""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.security._harness import VEIL, b64
from tests.security.conftest import MODEL, Deployment
from veil.attestation import SimulatedPlatform
from veil.coordinator.server import SimulatedCoordinatorTEE
from veil.coordinator.store import StateDirectory


def encodings(secret: bytes) -> Iterator[bytes]:
    """The byte patterns under which ``secret`` could leak."""
    yield secret
    yield secret.hex().encode()
    yield secret.hex().upper().encode()
    for variant in (base64.b64encode(secret), base64.urlsafe_b64encode(secret)):
        yield variant
        yield variant.rstrip(b"=")


def private_key_patterns(pem: bytes) -> Iterator[bytes]:
    """A PEM private key as PEM body lines, DER and the raw scalar."""
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    size = (key.curve.key_size + 7) // 8
    yield from encodings(key.private_numbers().private_value.to_bytes(size, "big"))
    yield der
    yield base64.b64encode(der)[:64]  # the first PEM body line
    for line in pem.splitlines():
        if len(line) == 64:
            yield line


def find_leaks(haystack: bytes, secrets: dict[str, list[bytes]]) -> list[str]:
    return [name for name, patterns in secrets.items() if any(p in haystack for p in patterns)]


def files_under(root: Path, *, exclude: Iterable[Path]) -> Iterator[Path]:
    excluded = [p.resolve() for p in exclude]
    for path in sorted(root.rglob("*")):
        resolved = path.resolve()
        if any(resolved == e or e in resolved.parents for e in excluded):
            continue
        if path.is_file():
            yield path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The full seven-step scenario, ``veil demo --workdir DIR``; returns (DIR, its output)."""
    d = tmp_path_factory.mktemp("demo") / "work"
    proc = subprocess.run(
        [*VEIL, "demo", "--workdir", str(d)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d, proc.stdout + proc.stderr


def demo_secrets(d: Path) -> dict[str, list[bytes]]:
    state = StateDirectory(
        d / "coordinator-state",
        SimulatedCoordinatorTEE(SimulatedPlatform(d / "simulated-platform")),
    )
    store = state.open()
    try:
        root_key = store.get("pki/root.key")
        intermediate_key = store.get("pki/intermediate.key")
        root_secret = store.get("state/root-secret")
    finally:
        store.close()
    assert root_key
    assert intermediate_key
    assert root_secret
    return {
        "model key": list(encodings((d / "model.key").read_bytes())),
        "model owner private key": list(private_key_patterns((d / "model-owner.key").read_bytes())),
        "admin private key": list(private_key_patterns((d / "admin.key").read_bytes())),
        "coordinator root key": list(private_key_patterns(root_key)),
        "coordinator intermediate key": list(private_key_patterns(intermediate_key)),
        "coordinator root secret": list(encodings(root_secret)),
        "coordinator data key": list(encodings(state.data_key)),
    }


def test_demo_leaves_no_secret_in_logs_output_or_files(demo: tuple[Path, str]) -> None:
    """After the whole demo, no secret appears in its output, its logs or any file outside the
    sealed store (the owners' own key files and the simulated hardware excepted)."""
    d, output = demo
    secrets = demo_secrets(d)
    assert not find_leaks(output.encode(), secrets), "secret in the demo's output"
    own_files = [d / "model.key", d / "model-owner.key", d / "admin.key"]
    sealed = [d / "coordinator-state" / n for n in ("state.db", "state.db-wal", "sealed_key")]
    hardware = [d / "simulated-platform"]
    leaks = {}
    scanned = 0
    for path in files_under(d, exclude=[*own_files, *sealed, *hardware]):
        scanned += 1
        found = find_leaks(path.read_bytes(), secrets)
        if found:
            leaks[str(path.relative_to(d))] = found
    assert scanned >= 10
    assert not leaks, leaks
    logs = "".join(p.read_text() for p in (d / "logs").glob("*.log"))
    assert "model key installed" in logs  # the scan really covered a run that used the key


def test_demo_writes_private_key_files_owner_only(demo: tuple[Path, str]) -> None:
    """The demo's model key and user private keys are mode 0600, as ``veil model keygen`` and
    ``veil user new`` write them; world-readable keys leak to every local user."""
    d, _ = demo
    modes = {
        name: stat.S_IMODE((d / name).stat().st_mode)
        for name in ("model.key", "model-owner.key", "admin.key")
    }
    assert all(mode & 0o077 == 0 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}


def test_sealed_store_holds_no_plaintext_secret(demo: tuple[Path, str]) -> None:
    """The sealed state itself is ciphertext: no secret (not even the model key) in it."""
    d, _ = demo
    secrets = demo_secrets(d)
    for path in (d / "coordinator-state").iterdir():
        assert not find_leaks(path.read_bytes(), secrets), path


def _deployment_secrets(deployment: Deployment) -> dict[str, list[bytes]]:
    users = {
        f"{name} private key": list(private_key_patterns(user.key_pem))
        for name, user in deployment.users.items()
    }
    return {"model key": list(encodings(deployment.model_key)), **users}


def test_error_bodies_never_echo_secret_values(deployment: Deployment) -> None:
    """Refused secret uploads (wrong size, wrong user, bad encoding, wrong type) never echo the
    value, nor the stored model key."""
    co, owner, reader = (
        deployment.coordinator,
        deployment.users["owner"],
        deployment.users["reader"],
    )
    key = deployment.model_key
    secrets = _deployment_secrets(deployment)
    bodies: list[bytes] = []
    with co.client(owner) as http:
        for value in (key + b"!", key[:16]):
            resp = http.post(
                "/api/v2/secrets", json={"secrets": {"model_key": {"Key": b64(value)}}}
            )
            assert resp.status_code == 400
            bodies.append(resp.content)
        resp = http.post(
            "/api/v2/secrets", json={"secrets": {"model_key": {"Key": key.hex() + "*"}}}
        )
        assert resp.status_code == 400
        bodies.append(resp.content)
        resp = http.post("/api/v2/secrets", json={"secrets": {key.hex(): {"Key": b64(key)}}})
        assert resp.status_code in (400, 404)
        bodies.append(resp.content.replace(key.hex().encode(), b""))  # the name is not the value
        resp = http.get("/api/v2/secrets", params={"s": "model_key"})
        bodies.append(resp.content)
    with co.client(reader) as http:
        resp = http.post("/api/v2/secrets", json={"secrets": {"model_key": {"Key": b64(key)}}})
        assert resp.status_code == 403
        bodies.append(resp.content)
    with co.client() as http:
        bodies.append(
            http.post("/api/v2/secrets", content=b'{"secrets": ' + key.hex().encode()).content
        )
    assert not find_leaks(b"\n".join(bodies), secrets)


def test_metrics_and_status_endpoints_carry_no_secret(deployment: Deployment) -> None:
    """Prometheus metrics and status documents of both services hold no secret."""
    secrets = _deployment_secrets(deployment)
    pages = []
    with deployment.coordinator.client() as http:
        for path in ("/metrics", "/api/v2/status", "/api/v2/update", "/api/v2/manifest", "/events"):
            pages.append(http.get(path).content)
    with deployment.rest() as http:
        for path in (
            "/monitoring/prometheus/metrics",
            f"/v1/models/{MODEL}",
            f"/v1/models/{MODEL}/metadata",
        ):
            pages.append(http.get(path).content)
    joined = b"\n".join(pages)
    assert b"veil" in joined or b"# TYPE" in joined or b"model_version_status" in joined
    assert not find_leaks(joined, secrets)


def test_running_processes_hold_no_secret_in_environment_or_arguments(
    deployment: Deployment,
) -> None:
    """The model key reaches the marble as a parameter in memory, never as a process environment
    variable or argument that ``/proc`` would show to the host."""
    assert deployment.server is not None
    assert deployment.coordinator.popen is not None
    secrets = _deployment_secrets(deployment)
    for pid in (deployment.server.pid, deployment.coordinator.popen.pid):
        for name in ("environ", "cmdline"):
            data = Path(f"/proc/{pid}/{name}").read_bytes()
            assert not find_leaks(data, secrets), (pid, name)


def test_deployment_logs_hold_no_secret(deployment: Deployment) -> None:
    """After every other test of the session ran against it, the services' logs are clean."""
    secrets = _deployment_secrets(deployment)
    logs = deployment.logs().encode()
    assert b"model key installed" in logs
    assert not find_leaks(logs, secrets)


def test_no_file_outside_the_sealed_store_holds_the_model_key(deployment: Deployment) -> None:
    """Of the deployment's working directory, only the user's own key files may hold keys."""
    secrets = {"model key": list(encodings(deployment.model_key))}
    d = deployment.dir
    sealed = [d / "coordinator-data"]
    own = [d / "users"]
    leaks = [
        str(p)
        for p in files_under(d, exclude=[*sealed, *own])
        if find_leaks(p.read_bytes(), secrets)
    ]
    assert not leaks, leaks
    assert (d / "coordinator-data" / "state.db").exists()
