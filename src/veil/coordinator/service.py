"""The coordinator service: wires attestation, PKI, secrets and the store around the pure core.

This layer reads the clock and the store and calls the TEE; the rules live in
:mod:`veil.coordinator.core`. Methods are synchronous and thread-safe (the store serialises
transactions); the API adapters run them in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import (
    Claims,
    Evidence,
    TEEKind,
    TrustAnchors,
    coordinator_report_data,
    marble_report_data,
    verify,
)
from veil.coordinator import core
from veil.coordinator._secrets import (
    decode_secret,
    derive_unique_key,
    encode_secret,
    generate_secret,
)
from veil.coordinator.core import Status
from veil.coordinator.store import Store, Transaction
from veil.errors import ManifestError, ProtocolError, StateError, VerificationError
from veil.manifest import (
    Manifest,
    RenderedParameters,
    SecretValue,
    TemplateContext,
    check_templates,
    referenced_secrets,
    render_parameters,
)
from veil.pki import (
    CertifiedKey,
    create_intermediate,
    create_root,
    csr_dns_names,
    issue_marble_certificate,
    issue_server_certificate,
    load_csr,
    marble_identity,
    spki_der,
    verify_issued_by,
)

log = logging.getLogger(__name__)
MAX_MANIFEST_SIZE = 1024 * 1024


class CoordinatorTEE(Protocol):
    """What the coordinator needs from the TEE it runs in."""

    tee: TEEKind

    def issue(self, report_data: bytes) -> Evidence:
        """Evidence of this coordinator with ``report_data`` bound in."""
        ...

    def seal_key(self) -> bytes:
        """The seal key of this coordinator's identity."""
        ...


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


@dataclass(frozen=True)
class _PKI:
    root: CertifiedKey
    intermediate: CertifiedKey
    marble_root: CertifiedKey
    mesh: CertifiedKey


def _pem(cert_der: bytes) -> bytes:
    return x509.load_der_x509_certificate(cert_der).public_bytes(serialization.Encoding.PEM)


class CoordinatorService:
    """The coordinator's operations, each one atomic against the store."""

    def __init__(
        self,
        store: Store,
        tee: CoordinatorTEE,
        *,
        trust_anchors: TrustAnchors,
        dns_names: Sequence[str] = ("localhost",),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        recovery: bool = False,
    ) -> None:
        self._store = store
        self._tee = tee
        self._anchors = trust_anchors
        self._clock = clock
        self._dns_names = tuple(dns_names)
        self._lock = threading.Lock()
        self._recovery = recovery
        self._pki = self._load_or_create_pki()
        self._manifest_cache: tuple[bytes, Manifest] | None = None

    # -- PKI -----------------------------------------------------------------------------------
    def _load_or_create_pki(self) -> _PKI:
        now = self._clock()
        with self._store.transaction() as txn:
            if txn.get("pki/root.cert") is None:
                root = create_root(now, dns_names=self._dns_names)
                inter, mroot = create_intermediate(root, now)
                txn.put("pki/root.cert", root.cert_pem)
                txn.put("pki/root.key", root.key_pem())
                txn.put("pki/intermediate.cert", inter.cert_pem)
                txn.put("pki/intermediate.key", inter.key_pem())
                txn.put("pki/marbleroot.cert", mroot.cert_pem)
                txn.put("state/root-secret", os.urandom(32))
                log.info("created coordinator root CA", extra={"event": "pki.created"})
            root = CertifiedKey.from_pem(_get(txn, "pki/root.cert"), _get(txn, "pki/root.key"))
            inter_key = _get(txn, "pki/intermediate.key")
            inter = CertifiedKey.from_pem(_get(txn, "pki/intermediate.cert"), inter_key)
            mroot = CertifiedKey.from_pem(_get(txn, "pki/marbleroot.cert"), inter_key)
        mesh = issue_server_certificate(
            inter, common_name="veil Coordinator mesh API", dns_names=self._dns_names, now=now
        )
        return _PKI(root=root, intermediate=inter, marble_root=mroot, mesh=mesh)

    @property
    def root_cert_pem(self) -> bytes:
        """The coordinator root certificate (deployment identity; client API TLS certificate)."""
        return self._pki.root.cert_pem

    @property
    def root(self) -> CertifiedKey:
        """Root CA with key: the client API's TLS identity (composition root only)."""
        return self._pki.root

    @property
    def mesh_identity(self) -> tuple[CertifiedKey, bytes]:
        """The mesh API's TLS key and chain (server cert ‖ intermediate)."""
        chain = self._pki.mesh.cert_pem + self._pki.intermediate.cert_pem
        return self._pki.mesh, chain

    @property
    def marble_root_pem(self) -> bytes:
        """The marble root CA: marble client certificates chain to it."""
        return self._pki.marble_root.cert_pem

    def certificate_chain_pem(self) -> bytes:
        """Intermediate then root, as MarbleRun's ``/quote`` returns."""
        return self._pki.intermediate.cert_pem + self._pki.root.cert_pem

    # -- state ---------------------------------------------------------------------------------
    def status(self) -> Status:
        """The current state."""
        if self._recovery:
            return Status.RECOVERY
        if self._store.get("manifest/raw") is None:
            return Status.ACCEPTING_MANIFEST
        return Status.ACCEPTING_MARBLES

    def manifest(self) -> Manifest | None:
        """The manifest in force, if any."""
        raw = self._store.get("manifest/raw")
        if raw is None:
            return None
        if self._manifest_cache is None or self._manifest_cache[0] != raw:
            self._manifest_cache = (raw, Manifest.from_json(raw))
        return self._manifest_cache[1]

    def manifest_document(self) -> tuple[bytes, str, bytes] | None:
        """(raw manifest, fingerprint, root-key ECDSA signature over the fingerprint bytes)."""
        raw = self._store.get("manifest/raw")
        signature = self._store.get("manifest/signature")
        manifest = self.manifest()
        if raw is None or signature is None or manifest is None:
            return None
        return raw, manifest.fingerprint(), signature

    def quote(self, nonce: bytes = b"") -> Evidence:
        """Evidence binding the root certificate (and the caller's nonce)."""
        if len(nonce) > 64:
            raise ProtocolError("the nonce is at most 64 bytes")
        return self._tee.issue(coordinator_report_data(self._pki.root.cert_der, nonce))

    def user_certificates_pem(self) -> list[bytes]:
        """PEM certificates of every manifest user (the client API's client-cert trust store)."""
        manifest = self.manifest()
        if manifest is None:
            return []
        return [u.certificate_pem.encode() for u in manifest.users.values()]

    def set_manifest(self, raw: bytes) -> Manifest:
        """Set the first manifest and generate its secrets (first writer wins)."""
        if len(raw) > MAX_MANIFEST_SIZE:
            raise ManifestError(f"the manifest is larger than {MAX_MANIFEST_SIZE} bytes")
        manifest = Manifest.from_json(raw)
        check_templates(manifest)
        now = self._clock()
        with self._lock, self._store.transaction() as txn:
            core.require_status(self.status(), Status.ACCEPTING_MANIFEST, action="set a manifest")
            for name, spec in manifest.secrets.items():
                if spec.user_defined or not spec.shared:
                    continue
                value = generate_secret(name, spec, issuer=self._pki.intermediate, now=now)
                txn.put(f"secrets/generated/{name}", encode_secret(value))
            digest = hashlib.sha256(manifest.canonical_bytes()).digest()
            signature = self._pki.root.key.sign(digest, ec.ECDSA(hashes.SHA256()))
            txn.put("manifest/raw", bytes(raw))
            txn.put("manifest/signature", signature)
            _log_update(txn, now, "set-manifest", manifest.fingerprint())
        log.info(
            "manifest set",
            extra={"event": "manifest.set", "fingerprint": manifest.fingerprint()},
        )
        return manifest

    # -- marbles -------------------------------------------------------------------------------
    def activate(self, request: ActivationRequest) -> ActivationResult:
        """Verify a marble's evidence against its package and certify its CSR key."""
        core.require_status(self.status(), Status.ACCEPTING_MARBLES, action="activate a marble")
        manifest = self._require_manifest()
        try:
            uuid = str(uuidlib.UUID(request.uuid))
        except ValueError:
            raise ProtocolError(f"{request.uuid!r} is not a UUID") from None
        policy = core.package_policy(manifest, request.marble_type)
        csr = load_csr(request.csr_der)
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
        now = self._clock()
        claims = verify(
            request.evidence,
            policy,
            trust_anchors=self._anchors,
            expected_report_data=marble_report_data(spki_der(public_key)),
            now=now,
        )
        with self._lock, self._store.transaction() as txn:
            count_key = f"activations/{request.marble_type}"
            count = int(txn.get(count_key) or b"0")
            core.admit_activation(manifest, request.marble_type, count)
            cert = issue_marble_certificate(
                csr,
                self._pki.intermediate,
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
            params, pending = self._render(txn, manifest, request.marble_type, uuid, cert)
        log.info(
            "marble activated",
            extra={"event": "marble.activated", "marble_type": request.marble_type, "uuid": uuid},
        )
        return ActivationResult(
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
            intermediate_pem=self._pki.intermediate.cert_pem,
            marble_root_pem=self._pki.marble_root.cert_pem,
            coordinator_root_pem=self._pki.root.cert_pem,
            parameters=params,
            pending_secrets=pending,
            claims=claims,
        )

    def marble_parameters(self, cert_der: bytes) -> RenderedParameters:
        """Parameters of an activated marble authenticated by its marble certificate."""
        manifest = self._require_manifest()
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            raise VerificationError("the client certificate does not parse") from None
        verify_issued_by(cert, self._pki.intermediate.cert, self._clock())
        uuid, marble_type = marble_identity(cert)
        if self._store.get(f"marbles/{uuid}") is None:
            raise VerificationError("this marble certificate belongs to no activated marble")
        with self._store.transaction() as txn:
            params, pending = self._render(txn, manifest, marble_type, uuid, cert)
        if params is None:
            raise StateError(
                f"waiting for user-defined secrets to be set: {', '.join(pending)}", retryable=True
            )
        return params

    def _render(
        self,
        txn: Transaction,
        manifest: Manifest,
        marble_type: str,
        uuid: str,
        cert: x509.Certificate,
    ) -> tuple[RenderedParameters | None, tuple[str, ...]]:
        marble = manifest.marbles[marble_type]
        needed = referenced_secrets(marble)
        secrets: dict[str, SecretValue] = {}
        pending: list[str] = []
        root_secret = _get(txn, "state/root-secret")
        now = self._clock()
        for name in sorted(needed):
            spec = manifest.secrets[name]
            if spec.user_defined:
                blob = txn.get(f"secrets/user/{name}")
                if blob is None:
                    pending.append(name)
                    continue
                secrets[name] = decode_secret(blob)
            elif spec.shared:
                secrets[name] = decode_secret(_get(txn, f"secrets/generated/{name}"))
            elif spec.type == "symmetric-key":
                secrets[name] = SecretValue(
                    key=derive_unique_key(
                        root_secret, uuid=uuid, name=name, marble_type=marble_type, size=spec.size
                    )
                )
            else:
                secrets[name] = generate_secret(name, spec, issuer=self._pki.intermediate, now=now)
        if pending:
            return None, tuple(pending)
        der = serialization.Encoding.DER
        context = TemplateContext(
            secrets=secrets,
            marblerun={
                "RootCA": SecretValue(cert_der=self._pki.marble_root.cert_der),
                "MarbleCert": SecretValue(
                    cert_der=cert.public_bytes(der),
                    public_der=spki_der(_ec_public(cert)),
                ),
                "CoordinatorRoot": SecretValue(cert_der=self._pki.root.cert_der),
                "CoordinatorIntermediate": SecretValue(cert_der=self._pki.intermediate.cert_der),
            },
        )
        return render_parameters(marble, context), ()

    # -- secrets -------------------------------------------------------------------------------
    def write_secrets(self, user_cert_der: bytes | None, values: Mapping[str, bytes]) -> str:
        """Store user-defined secrets after checking the user's WriteSecret role."""
        core.require_status(self.status(), Status.ACCEPTING_MARBLES, action="write secrets")
        manifest = self._require_manifest()
        user = core.authenticate_user(manifest, user_cert_der)
        core.authorize_secret_write(manifest, user, values)
        now = self._clock()
        with self._lock, self._store.transaction() as txn:
            for name, value in values.items():
                txn.put(f"secrets/user/{name}", encode_secret(SecretValue(key=value)))
                _log_update(txn, now, "secret-set", name, user=user)
        log.info(
            "user-defined secrets set",
            extra={"event": "secrets.set", "user": user, "secrets": sorted(values)},
        )
        return user

    def read_secrets(
        self, user_cert_der: bytes | None, names: Sequence[str]
    ) -> dict[str, SecretValue]:
        """Return secrets the user's ReadSecret role allows."""
        core.require_status(self.status(), Status.ACCEPTING_MARBLES, action="read secrets")
        manifest = self._require_manifest()
        user = core.authenticate_user(manifest, user_cert_der)
        core.authorize_secret_read(manifest, user, names)
        result: dict[str, SecretValue] = {}
        for name in names:
            spec = manifest.secrets[name]
            prefix = "secrets/user/" if spec.user_defined else "secrets/generated/"
            blob = self._store.get(prefix + name)
            if blob is not None:
                result[name] = decode_secret(blob)
        return result

    def update_log(self) -> list[str]:
        """The update log as JSON lines."""
        with self._store.transaction() as txn:
            return [_get(txn, k).decode() for k in txn.keys("updatelog/")]

    def _require_manifest(self) -> Manifest:
        manifest = self.manifest()
        if manifest is None:
            raise StateError("no manifest has been set yet", retryable=True)
        return manifest


def _ec_public(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProtocolError("marble keys must be ECDSA")
    return key


def _get(txn: Transaction, key: str) -> bytes:
    value = txn.get(key)
    if value is None:
        raise StateError(f"the coordinator state is incomplete: {key} is missing")
    return value


def _log_update(
    txn: Transaction, now: dt.datetime, action: str, subject: str, *, user: str = ""
) -> None:
    seq = len(txn.keys("updatelog/"))
    entry = {"time": now.isoformat(), "action": action, "subject": subject, "user": user}
    txn.put(f"updatelog/{seq:012d}", json.dumps(entry, sort_keys=True).encode())
