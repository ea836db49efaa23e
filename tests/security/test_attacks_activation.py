"""Attacks on marble activation, through the coordinator's mesh API of a running deployment.

Each test builds the activation request an attacker could build: real simulated-platform evidence
for an identity of its choice, bound to a key of its choice, sent over TLS to the mesh port.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid as uuidlib

import httpx

from tests.security._harness import SERVE_ID, activation_request, b64, marble_tls
from tests.security.conftest import LIMITED_MAX, Deployment
from veil.attestation import SimulatedIdentity, SimulatedPlatform, measure
from veil.attestation.backends.simulated_platform import DEFAULT_SIGNER_ID
from veil.pki import generate_key


def _refused(resp: httpx.Response, status: int, *fragments: str) -> None:
    assert resp.status_code == status, resp.text
    doc = resp.json()
    assert doc["status"] == "fail", doc
    assert "certificate" not in (doc.get("data") or {}), doc
    for fragment in fragments:
        assert fragment in doc["message"], doc["message"]


def test_evidence_replayed_with_another_key_is_refused(deployment: Deployment) -> None:
    """Evidence captured from a genuine marble, replayed with the attacker's own CSR key."""
    genuine = activation_request(deployment.platform, "server")
    attacker = activation_request(deployment.platform, "server")
    replay = dict(attacker.body, evidence=genuine.body["evidence"])
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=replay), 403, "report data")


def test_evidence_binding_a_key_other_than_the_csr_is_refused(deployment: Deployment) -> None:
    """Evidence made for key A with a CSR for key B: the coordinator certifies only bound keys."""
    other = generate_key()
    req = activation_request(deployment.platform, "server", bind_key=other)
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "report data")


def test_evidence_of_package_a_is_refused_for_package_b(deployment: Deployment) -> None:
    """A genuine inference-server evidence presented for the 'batch' marble type (other package)."""
    req = activation_request(deployment.platform, "batch")  # identity: measure("serve")
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "UniqueID")
    # control: the batch build itself is admitted
    own = activation_request(
        deployment.platform, "batch", identity=SimulatedIdentity(unique_id=measure("batch"))
    )
    with deployment.coordinator.mesh() as http:
        assert http.post("/api/v2/marble/activate", json=own.body).status_code == 200


def test_debug_enclave_is_refused_by_a_production_package(deployment: Deployment) -> None:
    """The right measurement, but a debug enclave (memory readable by the host): refused."""
    identity = SimulatedIdentity(unique_id=SERVE_ID, debug=True)
    req = activation_request(deployment.platform, "server", identity=identity)
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "debug")


def test_security_version_below_the_package_minimum_is_refused(deployment: Deployment) -> None:
    """SignerID/ProductID match, SecurityVersion 2 < 3: an old, vulnerable build is refused."""
    old = SimulatedIdentity(
        unique_id=measure("signed-v2"),
        signer_id=DEFAULT_SIGNER_ID,
        product_id=7,
        security_version=2,
    )
    req = activation_request(deployment.platform, "signed", identity=old)
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "SecurityVersion")


def test_evidence_of_another_product_is_refused_for_a_signer_package(
    deployment: Deployment,
) -> None:
    """Same signer, another ProductID (a different product of the same vendor): refused."""
    other = SimulatedIdentity(
        unique_id=measure("x"), signer_id=DEFAULT_SIGNER_ID, product_id=8, security_version=9
    )
    req = activation_request(deployment.platform, "signed", identity=other)
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "ProductID")


def test_simulated_evidence_is_refused_for_a_hardware_package(deployment: Deployment) -> None:
    """Genuine simulated evidence with the pinned measurement, for a package that says TEE sgx."""
    req = activation_request(deployment.platform, "hw")
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403, "simulated")


def test_simulated_evidence_relabelled_as_sgx_is_refused(deployment: Deployment) -> None:
    """Simulated evidence sent with ``tee: sgx`` is parsed as a DCAP quote and refused."""
    req = activation_request(deployment.platform, "hw", tee="sgx")
    with deployment.coordinator.mesh() as http:
        resp = http.post("/api/v2/marble/activate", json=req.body)
    assert resp.status_code in (400, 403), resp.text
    assert resp.json()["status"] == "fail"


def test_evidence_from_another_simulated_platform_is_refused(
    deployment: Deployment, scratch: object
) -> None:
    """An attacker's own simulated 'hardware' (another root) cannot vouch for a marble."""
    from pathlib import Path

    rogue = SimulatedPlatform.create(Path(str(scratch)) / "rogue-platform")
    req = activation_request(rogue, "server")
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403)


def test_parallel_activations_admit_exactly_max_activations(deployment: Deployment) -> None:
    """24 genuine activations of a MaxActivations=3 type race each other: exactly 3 succeed."""
    requests = [activation_request(deployment.platform, "limited") for _ in range(24)]
    barrier = threading.Barrier(len(requests))

    def fire(body: dict[str, object]) -> int:
        with deployment.coordinator.mesh(timeout=60) as http:
            barrier.wait()
            return http.post("/api/v2/marble/activate", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        codes = list(pool.map(fire, [r.body for r in requests]))
    assert codes.count(200) == LIMITED_MAX, codes
    assert set(codes) <= {200, 403}, codes
    with deployment.coordinator.mesh() as http:
        late = http.post(
            "/api/v2/marble/activate", json=activation_request(deployment.platform, "limited").body
        )
    _refused(late, 403, "MaxActivations")


def test_marble_certificate_of_a_refused_activation_never_exists(deployment: Deployment) -> None:
    """A refused marble cannot fetch parameters: it has no certificate the mesh API accepts."""
    req = activation_request(
        deployment.platform, "server", identity=SimulatedIdentity(b"\x01" * 32)
    )
    with deployment.coordinator.mesh() as http:
        _refused(http.post("/api/v2/marble/activate", json=req.body), 403)
        resp = http.get("/api/v2/marble/parameters")
    _refused(resp, 401)


def test_user_certificate_cannot_fetch_marble_parameters(deployment: Deployment) -> None:
    """A manifest user presenting its certificate on the mesh API gets no marble parameters."""
    co = deployment.coordinator
    ctx = co.tls(deployment.users["owner"])
    try:
        with httpx.Client(base_url=co.mesh_url, verify=ctx, timeout=10) as http:
            resp = http.get("/api/v2/marble/parameters")
    except httpx.HTTPError:
        return  # refused during the TLS handshake: the user CA is not the marble root
    assert resp.status_code in (401, 403), resp.text
    assert "parameters" not in (resp.json().get("data") or {})


def test_template_injection_through_a_secret_value_is_inert(deployment: Deployment) -> None:
    """A plain secret whose value is a template is rendered verbatim, never evaluated."""
    co, owner = deployment.coordinator, deployment.users["owner"]
    payload = b"{{ hex .Secrets.model_key }}{{ raw .MarbleRun.MarbleCert.Private }}"
    with co.client(owner) as http:
        resp = http.post("/api/v2/secrets", json={"secrets": {"note": {"Key": b64(payload)}}})
    assert resp.status_code == 200, resp.text
    identity = SimulatedIdentity(
        unique_id=measure("signed-v3"),
        signer_id=DEFAULT_SIGNER_ID,
        product_id=7,
        security_version=3,
    )
    req = activation_request(deployment.platform, "signed", identity=identity)
    with co.mesh() as http:
        resp = http.post("/api/v2/marble/activate", json=req.body)
    assert resp.status_code == 200, resp.text
    activation = resp.json()["data"]
    params = activation["parameters"]
    if params is None:  # pending secrets: fetch with the marble certificate
        with httpx.Client(
            base_url=co.mesh_url, verify=marble_tls(co, req, activation), timeout=10
        ) as http:
            params = http.get("/api/v2/marble/parameters").json()["data"]["parameters"]
    import base64

    note = base64.b64decode(params["env"]["NOTE"])
    assert note == payload
    assert deployment.model_key.hex().encode() not in note
    assert deployment.model_key.hex() not in str(params)


def test_activation_with_a_uuid_that_is_not_a_uuid_is_refused(deployment: Deployment) -> None:
    """Hostile UUIDs (path traversal, SQL-ish text) are refused before anything is stored."""
    for bad in ("../../etc/passwd", "'; DROP TABLE kv; --", "0" * 1000, ""):
        req = activation_request(deployment.platform, "server", uuid=bad)
        with deployment.coordinator.mesh() as http:
            resp = http.post("/api/v2/marble/activate", json=req.body)
        assert resp.status_code == 400, (bad, resp.text)
    good = activation_request(deployment.platform, "server", uuid=str(uuidlib.uuid4()))
    with deployment.coordinator.mesh() as http:
        assert http.post("/api/v2/marble/activate", json=good.body).status_code == 200
