"""Client commands: verify the deployment, then predict over attested TLS."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import click
import httpx

from veil.attestation import Policy, TrustAnchors
from veil.cli._common import coordinator_option, handle_errors, out, read_file
from veil.client import CoordinatorClient, verify_coordinator
from veil.errors import NetworkError, ProtocolError


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
@click.option("--server", required=True, help="Inference REST address HOST:PORT.")
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
@handle_errors
def predict(server: str, model_name: str, coordinator_cert: Path, instances_file: Path) -> None:
    """Send a TF Serving REST :predict request over TLS pinned to the coordinator root."""
    ctx = ssl.create_default_context(cadata=read_file(coordinator_cert, "certificate").decode())
    body = read_file(instances_file, "request")
    try:
        resp = httpx.post(
            f"https://{server}/v1/models/{model_name}:predict",
            content=body,
            headers={"content-type": "application/json"},
            verify=ctx,
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach the inference server at {server}: {exc}") from None
    if resp.status_code != 200:
        raise ProtocolError(f"the server answered HTTP {resp.status_code}: {resp.text}")
    out.print(resp.text)


def register(cli: click.Group) -> None:
    """Attach the client commands."""
    cli.add_command(verify)
    cli.add_command(predict)
