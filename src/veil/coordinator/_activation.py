"""Marble activation and parameter rendering (part of :class:`CoordinatorService`).

The marble's evidence must bind the public key of its CSR; the coordinator certifies exactly that
key and never sees a marble private key. ``MaxActivations`` is counted inside the transaction
that issues the certificate.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import Claims, Evidence, marble_report_data, verify
from veil.coordinator import core
from veil.coordinator._secrets import decode_secret, derive_unique_key, generate_secret
from veil.coordinator.core import Status
from veil.coordinator.store import Transaction, run_transaction
from veil.errors import Error, ProtocolError, StateError, VerificationError
from veil.manifest import (
    Manifest,
    RenderedParameters,
    SecretValue,
    TemplateContext,
    referenced_secrets,
    render_parameters,
)
from veil.pki import (
    csr_dns_names,
    issue_marble_certificate,
    load_csr,
    marble_identity,
    spki_der,
    verify_issued_by,
)

if TYPE_CHECKING:
    from veil.coordinator.service import CoordinatorService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivationRequest:
    """A marble's request: its type, UUID, CSR (DER) and evidence binding the CSR key."""

    marble_type: str
    uuid: str
    csr_der: bytes
    evidence: Evidence


@dataclass(frozen=True)
class ActivationResult:
    """What an admitted marble receives."""

    certificate_pem: bytes
    intermediate_pem: bytes
    marble_root_pem: bytes
    coordinator_root_pem: bytes
    parameters: RenderedParameters | None
    pending_secrets: tuple[str, ...]
    claims: Claims


def _result_class(exc: Exception) -> str:
    return type(exc).__name__ if isinstance(exc, Error) else "InternalError"


def activate(svc: CoordinatorService, request: ActivationRequest) -> ActivationResult:
    """Verify a marble's evidence against its package and certify its CSR key."""
    now = svc.clock()
    marble_type = request.marble_type if len(request.marble_type) <= 128 else "<too long>"
    try:
        result = _activate(svc, request)
    except Exception as exc:
        svc.metrics.activation(marble_type, _result_class(exc))
        svc.events.add(
            now,
            event="activation",
            marbleType=marble_type,
            result="refused",
            reason=exc.message if isinstance(exc, Error) else "internal error",
        )
        raise
    svc.metrics.activation(marble_type, "success")
    svc.events.add(
        now, event="activation", marbleType=marble_type, uuid=request.uuid, result="success"
    )
    return result


def _activate(svc: CoordinatorService, request: ActivationRequest) -> ActivationResult:
    core.require_status(svc.status(), Status.ACCEPTING_MARBLES, action="activate a marble")
    manifest = svc.require_manifest()
    try:
        uuid = str(uuidlib.UUID(request.uuid))
    except ValueError:
        raise ProtocolError("the marble UUID is not a UUID") from None
    policy = core.package_policy(manifest, request.marble_type)
    csr = load_csr(request.csr_der)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
    now = svc.clock()
    claims = verify(
        request.evidence,
        policy,
        trust_anchors=svc.anchors,
        expected_report_data=marble_report_data(spki_der(public_key)),
        now=now,
        collateral=svc.collateral,
    )
    svc.refresh()  # another replica may have rotated the intermediate CA

    def block(
        txn: Transaction,
    ) -> tuple[x509.Certificate, RenderedParameters | None, tuple[str, ...]]:
        # Count and certificate in one transaction: re-run if another replica activated between.
        count_key = f"activations/{request.marble_type}"
        count = int(txn.get(count_key) or b"0")
        core.admit_activation(manifest, request.marble_type, count)
        cert = issue_marble_certificate(
            csr,
            svc.intermediate,
            marble_uuid=uuid,
            marble_type=request.marble_type,
            dns_names=csr_dns_names(csr) or ["localhost"],
            now=now,
        )
        txn.put(count_key, str(count + 1).encode())
        txn.put(
            f"marbles/{uuid}",
            json.dumps({"type": request.marble_type, "activated": now.isoformat()}).encode(),
        )
        params, pending = render(
            svc, txn, manifest, marble_type=request.marble_type, uuid=uuid, cert=cert
        )
        return cert, params, pending

    cert, params, pending = run_transaction(svc.store, block)
    log.info(
        "marble activated",
        extra={"event": "marble.activated", "marble_type": request.marble_type, "uuid": uuid},
    )
    certs = svc.pki_certs_der
    pem = serialization.Encoding.PEM
    return ActivationResult(
        certificate_pem=cert.public_bytes(pem),
        intermediate_pem=x509.load_der_x509_certificate(certs["intermediate"]).public_bytes(pem),
        marble_root_pem=svc.marble_root_pem,
        coordinator_root_pem=svc.root_cert_pem,
        parameters=params,
        pending_secrets=pending,
        claims=claims,
    )


def marble_parameters(svc: CoordinatorService, cert_der: bytes) -> RenderedParameters:
    """Parameters of an activated marble authenticated by its marble certificate."""
    svc.refresh()  # its certificate may come from an intermediate another replica rotated to
    manifest = svc.require_manifest()
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise VerificationError("the client certificate does not parse") from None
    verify_issued_by(cert, svc.intermediate.cert, svc.clock())
    uuid, marble_type = marble_identity(cert)
    if svc.store.get(f"marbles/{uuid}") is None:
        raise VerificationError("this marble certificate belongs to no activated marble")
    if marble_type not in manifest.marbles:
        raise VerificationError("this marble's type is no longer in the manifest")
    with svc.store.transaction() as txn:
        params, pending = render(svc, txn, manifest, marble_type=marble_type, uuid=uuid, cert=cert)
    if params is None:
        raise StateError(
            f"waiting for user-defined secrets to be set: {', '.join(pending)}", retryable=True
        )
    return params


def _secret_values(
    svc: CoordinatorService,
    txn: Transaction,
    manifest: Manifest,
    names: frozenset[str],
    *,
    marble_type: str,
    uuid: str,
) -> tuple[dict[str, SecretValue], list[str]]:
    secrets: dict[str, SecretValue] = {}
    pending: list[str] = []
    root_secret = txn.get("state/root-secret") or b""
    now = svc.clock()
    for name in sorted(names):
        spec = manifest.secrets[name]
        if spec.user_defined:
            blob = txn.get(f"secrets/user/{name}")
            if blob is None:
                pending.append(name)
                continue
            secrets[name] = decode_secret(blob)
        elif spec.shared:
            blob = txn.get(f"secrets/generated/{name}")
            if blob is None:
                raise StateError(f"the coordinator state is incomplete: secret {name} is missing")
            secrets[name] = decode_secret(blob)
        elif spec.type == "symmetric-key":
            secrets[name] = SecretValue(
                key=derive_unique_key(
                    root_secret, uuid=uuid, name=name, marble_type=marble_type, size=spec.size
                )
            )
        else:
            secrets[name] = generate_secret(name, spec, issuer=svc.intermediate, now=now)
    return secrets, pending


def _previous_values(
    txn: Transaction,
    manifest: Manifest,
    secrets: dict[str, SecretValue],
    *,
    marble_type: str,
    uuid: str,
) -> dict[str, SecretValue]:
    """Values before the last root-secret rotation (``.Previous``); unchanged ones as they are."""
    previous_root = txn.get("state/root-secret-previous")
    previous: dict[str, SecretValue] = {}
    for name, value in secrets.items():
        spec = manifest.secrets[name]
        blob = txn.get(f"secrets/previous/{name}") if spec.shared else None
        if blob is not None:
            previous[name] = decode_secret(blob)
        elif previous_root and not spec.shared and spec.type == "symmetric-key":
            previous[name] = SecretValue(
                key=derive_unique_key(
                    previous_root, uuid=uuid, name=name, marble_type=marble_type, size=spec.size
                )
            )
        else:
            previous[name] = value
    return previous


def render(
    svc: CoordinatorService,
    txn: Transaction,
    manifest: Manifest,
    *,
    marble_type: str,
    uuid: str,
    cert: x509.Certificate,
) -> tuple[RenderedParameters | None, tuple[str, ...]]:
    """Render a marble's parameters, or list the user-defined secrets it still waits for."""
    marble = manifest.marbles[marble_type]
    needed = referenced_secrets(marble)
    secrets, pending = _secret_values(
        svc, txn, manifest, needed, marble_type=marble_type, uuid=uuid
    )
    if pending:
        return None, tuple(pending)
    previous = _previous_values(txn, manifest, secrets, marble_type=marble_type, uuid=uuid)
    der = serialization.Encoding.DER
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise ProtocolError("marble keys must be ECDSA")
    certs = svc.pki_certs_der
    context = TemplateContext(
        secrets=secrets,
        previous=previous,
        marblerun={
            "RootCA": SecretValue(cert_der=certs["marble_root"]),
            "MarbleCert": SecretValue(cert_der=cert.public_bytes(der), public_der=spki_der(public)),
            "CoordinatorRoot": SecretValue(cert_der=certs["root"]),
            "CoordinatorIntermediate": SecretValue(cert_der=certs["intermediate"]),
        },
    )
    return render_parameters(marble, context), ()
