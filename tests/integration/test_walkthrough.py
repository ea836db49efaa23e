"""The seven steps of DESIGN.md through the real CLI, with every refusal a user can hit.

Tests run in file order against one module-scoped deployment (steps 1-4 happen in the fixture):
refusals that need "no key yet" come before the model owner uploads the key.
"""

from __future__ import annotations

import json
import ssl

import grpc
import httpx
import numpy as np
import onnxruntime as ort

from tests.integration._deploy import veil, wait_model_state
from tests.integration.conftest import MODEL, Deployment, labels_of


def _tls(d: Deployment) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(d.root))


def test_marble_activated_and_serves_over_tls_chained_to_the_coordinator_root(
    deployment: Deployment,
) -> None:
    """Steps 3-4: the marble's REST endpoint presents a certificate chaining to the coordinator root."""
    with httpx.Client(verify=_tls(deployment), timeout=10) as http:
        resp = http.get(f"https://{deployment.rest}/v1/models/{MODEL}")
    assert resp.status_code in (200, 404)
    assert "activated" in deployment.services.logs()


def test_plaintext_http_to_the_tls_port_gets_no_answer(deployment: Deployment) -> None:
    """The inference port speaks only TLS: a plaintext request never gets a prediction."""
    try:
        resp = httpx.get(f"http://{deployment.rest}/v1/models/{MODEL}", timeout=5)
    except httpx.HTTPError:
        return
    assert resp.status_code >= 400


def test_predict_before_the_key_is_tf_serving_not_found(deployment: Deployment) -> None:
    """Refusal: before the key exists, predict answers 404 in TF Serving's error format."""
    with httpx.Client(verify=_tls(deployment), timeout=10) as http:
        resp = http.post(
            f"https://{deployment.rest}/v1/models/{MODEL}:predict",
            json={"instances": deployment.model.x_test[:2].tolist()},
        )
    assert resp.status_code == 404
    assert resp.json() == {"error": f"Servable not found for request: Latest({MODEL})"}


def test_client_with_wrong_policy_refuses_the_coordinator(deployment: Deployment) -> None:
    """Refusal: a client whose policy pins another measurement refuses to proceed (exit 1)."""
    d = deployment.dir
    wrong = json.loads((d / "policy.json").read_text())
    wrong["UniqueID"] = "00" * 32
    (d / "wrong-policy.json").write_text(json.dumps(wrong))
    proc = veil(
        "verify", "--coordinator", deployment.client, "--policy", d / "wrong-policy.json",
        "--simulated-root", d / "platform" / "root.pem", "--save-root", d / "never.pem",
        cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "error: measurement (UniqueID)" in proc.stderr
    assert f"does not match the expected {'00' * 32}" in proc.stderr
    assert not (d / "never.pem").exists()


def test_client_policy_for_real_hardware_refuses_simulated_evidence(deployment: Deployment) -> None:
    """Refusal: a production policy (TEE sgx) rejects simulated evidence; no silent fallback."""
    d = deployment.dir
    prod = json.loads((d / "policy.json").read_text())
    prod["TEE"] = "sgx"
    (d / "prod-policy.json").write_text(json.dumps(prod))
    proc = veil(
        "verify", "--coordinator", deployment.client, "--policy", d / "prod-policy.json",
        "--simulated-root", d / "platform" / "root.pem", "--save-root", d / "never.pem",
        cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "simulated-TEE evidence refused" in proc.stderr


def test_marble_with_modified_measurement_is_refused_activation(deployment: Deployment) -> None:
    """Refusal: a server whose measurement differs from the manifest package is not activated."""
    d = deployment.dir
    (d / "patch.py").write_text("print('modified')\n")
    proc = veil(
        "serve", "--model_name", MODEL, "--model_base_path", d / "good" / MODEL,
        "--port", "0", "--rest_api_port", "0", "--coordinator", deployment.mesh,
        "--marble-type", "server", "--coordinator-cert", deployment.root, "--tee", "simulated",
        "--simulated-platform", d / "platform", "--uuid-file", d / "modified.uuid",
        "--measure-extra-file", d / "patch.py", cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "activation refused by the coordinator: measurement (UniqueID)" in proc.stderr
    assert "a different or modified build" in proc.stderr


def test_admin_without_write_secret_cannot_upload_the_key(deployment: Deployment) -> None:
    """Refusal: a user without WriteSecret gets HTTP 403, shown as a clear CLI error (exit 1)."""
    d = deployment.dir
    proc = veil(
        "secret", "set", "model_key", "--key-file", d / "model.key",
        "--coordinator", deployment.client, "--coordinator-cert", deployment.root,
        *deployment.admin_auth(), cwd=d, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "error: user 'admin' is not allowed to write secret 'model_key'" in proc.stderr


def test_step5_owner_verifies_deployment_and_uploads_the_key(deployment: Deployment) -> None:
    """Step 5: the owner verifies coordinator and manifest, then uploads the model key."""
    d = deployment.dir
    out = veil(
        "verify", "--coordinator", deployment.client, "--policy", d / "policy.json",
        "--simulated-root", d / "platform" / "root.pem", "--manifest", d / "manifest.json",
        "--save-root", d / "owner-root.pem", cwd=d,
    ).stdout  # fmt: skip
    assert "deployed manifest matches" in out
    assert (d / "owner-root.pem").read_bytes() == deployment.root.read_bytes()
    veil(
        "secret", "set", "model_key", "--key-file", d / "model.key",
        "--coordinator", deployment.client, "--coordinator-cert", d / "owner-root.pem",
        *deployment.owner_auth(), cwd=d,
    )  # fmt: skip


def test_step6_marble_decrypts_the_model_in_memory(deployment: Deployment) -> None:
    """Step 6: the marble receives the key and the model becomes AVAILABLE; no plaintext on disk."""
    status = deployment.wait_available()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"  # type: ignore[index]
    plaintext = deployment.model.onnx_bytes[:64]
    for path in deployment.dir.rglob("*"):
        if path.is_file() and path.name != "digits.onnx":
            assert plaintext not in path.read_bytes(), path


def test_tampered_ciphertext_is_refused_at_load_and_nothing_is_served(
    deployment: Deployment,
) -> None:
    """Refusal: a tampered model fails authentication at load; the server serves nothing for it."""
    status = wait_model_state(deployment.tampered_rest, deployment.root, MODEL)
    version = status["model_version_status"][0]
    assert version["state"] == "END"
    assert "could not be decrypted" in version["status"]["error_message"]
    with httpx.Client(verify=_tls(deployment), timeout=10) as http:
        resp = http.post(
            f"https://{deployment.tampered_rest}/v1/models/{MODEL}:predict",
            json={"instances": deployment.model.x_test[:1].tolist()},
        )
    assert resp.status_code == 404
    assert resp.json() == {"error": f"Servable not found for request: Latest({MODEL})"}


def test_step7_client_predictions_equal_plaintext_onnxruntime(deployment: Deployment) -> None:
    """Step 7: the client's accuracy over attested TLS equals the plaintext model's accuracy."""
    d = deployment.dir
    x, y = deployment.model.x_test, deployment.model.y_test
    (d / "request.json").write_text(json.dumps({"instances": x.tolist()}))
    out = veil(
        "predict", "--server", deployment.rest, "--model", MODEL,
        "--coordinator-cert", deployment.root, "--instances", d / "request.json", cwd=d,
    ).stdout  # fmt: skip
    served = labels_of(json.loads(out)["predictions"])
    session = ort.InferenceSession(deployment.model.onnx_bytes, providers=["CPUExecutionProvider"])
    reference = session.run(["label"], {"X": x})[0]
    assert np.array_equal(served, reference)
    assert float(np.mean(served == y)) == float(np.mean(reference == y))


def test_grpc_predict_agrees_with_rest(deployment: Deployment) -> None:
    """gRPC PredictionService.Predict over the marble's TLS gives the same labels as REST."""
    from veil.serving._proto import predict_pb2, prediction_service_pb2_grpc, tensor_pb2

    x = deployment.model.x_test[:20]
    creds = grpc.ssl_channel_credentials(root_certificates=deployment.root.read_bytes())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    tensor = tensor_pb2.TensorProto(dtype=1, tensor_content=x.astype("<f4").tobytes())
    tensor.tensor_shape.dim.add(size=x.shape[0])
    tensor.tensor_shape.dim.add(size=x.shape[1])
    request.inputs["X"].CopyFrom(tensor)
    with grpc.secure_channel(f"localhost:{deployment.grpc_port}", creds) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    labels = np.asarray(response.outputs["label"].int64_val)
    session = ort.InferenceSession(deployment.model.onnx_bytes, providers=["CPUExecutionProvider"])
    assert np.array_equal(labels, session.run(["label"], {"X": x})[0])


def test_no_key_material_in_any_log(deployment: Deployment) -> None:
    """Secrets never reach logs: neither the model key bytes nor their hex appear anywhere."""
    key = (deployment.dir / "model.key").read_bytes()
    logs = deployment.services.logs()
    assert key.hex() not in logs
    assert key.hex().upper() not in logs
    import base64

    assert base64.b64encode(key).decode() not in logs
