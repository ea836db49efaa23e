"""Client commands: verify the deployment, then predict over attested TLS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from veil.attestation import Policy, TrustAnchors
from veil.cli._common import coordinator_option, handle_errors, out, read_file
from veil.client import CoordinatorClient, InferenceClient, verify_coordinator
from veil.errors import ProtocolError


@click.command("verify")
@coordinator_option
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Attestation policy (JSON, MarbleRun keys + TEE).",
)
@click.option(
    "--simulated-root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Root certificate of the simulated platform (only for TEE 'simulated').",
)
@click.option(
    "--manifest",
    "manifest_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also require the deployed manifest to be exactly this one.",
)
@click.option(
    "--save-root",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("coordinator-root.pem"),
    show_default=True,
)
@handle_errors
def verify(
    coordinator: str,
    policy_file: Path,
    simulated_root: Path | None,
    manifest_file: Path | None,
    save_root: Path,
) -> None:
    """Attest the coordinator (and its manifest), then save its root certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    policy = Policy.from_file(policy_file)
    anchors = TrustAnchors(
        simulated_root_der=x509.load_pem_x509_certificate(
            read_file(simulated_root, "simulated root")
        ).public_bytes(serialization.Encoding.DER)
        if simulated_root
        else None
    )
    verified = verify_coordinator(coordinator, policy, trust_anchors=anchors)
    out.print(f"coordinator evidence verified: {json.dumps(verified.claims.describe())}")
    if manifest_file is not None:
        with CoordinatorClient(coordinator, root_pem=verified.root_pem) as c:
            fingerprint = c.verify_manifest(read_file(manifest_file, "manifest"))
        out.print(f"deployed manifest matches: {fingerprint}")
    save_root.write_bytes(verified.root_pem)
    out.print(f"saved the verified coordinator root to {save_root}")


@click.command("predict")
@click.option(
    "--server", required=True, help="Inference address HOST:PORT (REST, or gRPC with --grpc)."
)
@click.option("--model", "model_name", required=True)
@click.option(
    "--coordinator-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Verified coordinator root: the server's certificate must chain to it.",
)
@click.option(
    "--instances",
    "instances_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help='JSON file: a TF Serving request body, e.g. {"instances": [...]}.',
)
@click.option("--grpc", "use_grpc", is_flag=True, help="Use TF Serving gRPC Predict.")
@click.option(
    "--input-name",
    help="With --grpc and an 'instances' body: the model input the instances feed.",
)
@handle_errors
def predict(
    server: str,
    model_name: str,
    coordinator_cert: Path,
    instances_file: Path,
    use_grpc: bool,
    input_name: str | None,
) -> None:
    """Send a TF Serving :predict request over TLS pinned to the coordinator root."""
    root = read_file(coordinator_cert, "certificate")
    try:
        body = json.loads(read_file(instances_file, "request"))
    except ValueError:
        raise ProtocolError(f"{instances_file} is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"{instances_file} must hold a JSON object")
    if not use_grpc:
        with InferenceClient.from_verified_root(server, root_pem=root) as rest:
            click.echo(json.dumps(rest.predict_json(model_name, body)))
        return
    if isinstance(body.get("inputs"), dict):
        inputs = {name: _array(value) for name, value in body["inputs"].items()}
    elif "instances" in body and input_name:
        inputs = {input_name: _array(body["instances"])}
    else:
        raise click.UsageError(
            'with --grpc give {"inputs": {"name": [...]}} or "instances" with --input-name'
        )
    with InferenceClient.from_verified_root(server, root_pem=root, protocol="grpc") as grpc_client:
        outputs = grpc_client.predict(
            model_name, inputs, signature_name=str(body.get("signature_name", ""))
        )
    click.echo(json.dumps({"outputs": {name: value.tolist() for name, value in outputs.items()}}))


def _array(value: object) -> Any:
    """JSON numbers as float32 (or int64 when every value is an integer)."""
    array = np.asarray(value)
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind == "b":
        return array
    return array.astype(np.float32)


def register(cli: click.Group) -> None:
    """Attach the client commands."""
    cli.add_command(verify)
    cli.add_command(predict)
