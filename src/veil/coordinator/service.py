"""The coordinator service: wires attestation, PKI, secrets and the store around the pure core.

This layer reads the clock and the store and calls the TEE; the rules live in
:mod:`veil.coordinator.core` and :mod:`veil.coordinator._update_rules`. Methods are synchronous
and thread-safe; every read-modify-write of the state is one serialisable store transaction run
through :func:`~veil.coordinator.store.run_transaction`, which re-runs it on conflict when several
replicas share an etcd store (ADR 0008). The thread lock only orders this process's local effects
(sealed key files, recovery mode) and is never held inside a retried block. The API adapters run
the methods in a worker thread. Activation lives in ``_activation``, updates in ``_updates``, recovery in
``_recovery``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation import Collateral, Evidence, TEEKind, TrustAnchors, coordinator_report_data
from veil.coordinator import _activation, _updates, core
from veil.coordinator._activation import ActivationRequest, ActivationResult
from veil.coordinator._metrics import EventLog, Metrics
from veil.coordinator._recovery import RecoverySession, plan_recovery
from veil.coordinator._secrets import decode_secret, encode_secret, generate_secret
from veil.coordinator._update_rules import apply_security_versions
from veil.coordinator._updatelog import UpdateLog, append_entry, read_log
from veil.coordinator.core import Status
from veil.coordinator.store import SealedState, Store, Transaction, run_transaction
from veil.errors import Error, ManifestError, ProtocolError, StateError, VerificationError
from veil.manifest import Manifest, RenderedParameters, SecretValue, check_templates
from veil.pki import CertifiedKey, create_intermediate, create_root, issue_server_certificate

__all__ = [
    "ActivationRequest",
    "ActivationResult",
    "CoordinatorService",
    "CoordinatorTEE",
    "ManifestSet",
    "RecoveryProgress",
    "UpdateResult",
]

log = logging.getLogger(__name__)
MAX_MANIFEST_SIZE = 1024 * 1024
UpdateResult = _updates.UpdateResult


class CoordinatorTEE(Protocol):
    """What the coordinator needs from the TEE it runs in."""

    tee: TEEKind

    def issue(self, report_data: bytes) -> Evidence:
        """Evidence of this coordinator with ``report_data`` bound in."""
        ...

    def seal_key(self, mode: str = "ProductKey") -> bytes:
        """The seal key of this coordinator's identity for a seal mode."""
        ...


@dataclass(frozen=True)
class ManifestSet:
    """The manifest now in force and the encrypted recovery secrets (name → RSA-OAEP bytes)."""

    manifest: Manifest
    recovery_secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RecoveryProgress:
    """After an upload: how many keys must still upload, and whether the state is recovered."""

    remaining: int
    recovered: bool


@dataclass(frozen=True)
class _PKI:
    root: CertifiedKey
    intermediate: CertifiedKey
    marble_root: CertifiedKey
    mesh: CertifiedKey


def get_required(txn: Transaction, key: str) -> bytes:
    """A value the state must hold; raise StateError naming the missing key."""
    value = txn.get(key)
    if value is None:
        raise StateError(f"the coordinator state is incomplete: {key} is missing")
    return value


class CoordinatorService:
    """The coordinator's operations, each one atomic against the store.

    ``state_dir`` (the sealed data directory) enables recovery records, seal modes and recovery;
    without it (memory store) the state lives only as long as the process.
    """

    def __init__(
        self,
        store: Store,
        tee: CoordinatorTEE,
        *,
        trust_anchors: TrustAnchors,
        dns_names: Sequence[str] = ("localhost",),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        recovery: bool = False,
        state_dir: SealedState | None = None,
        collateral: Collateral | None = None,
    ) -> None:
        self._store = store
        self._collateral = collateral or Collateral()
        self._tee = tee
        self._anchors = trust_anchors
        self._clock = clock
        self._dns_names = tuple(dns_names)
        self._lock = threading.RLock()
        self._recovery = recovery
        self._state_dir = state_dir
        self._session: RecoverySession | None = None
        if recovery:
            record = state_dir.read_recovery_record() if state_dir is not None else None
            self._session = RecoverySession(record)
        self._listeners: list[Callable[[], None]] = []
        self.metrics = Metrics()
        self.events = EventLog()
        self._pki = self._load_or_create_pki()
        self._manifest_cache: tuple[bytes, Manifest] | None = None
        self._seen = self._state_token()

    # -- PKI -----------------------------------------------------------------------------------
    def _load_or_create_pki(self) -> _PKI:
        now = self._clock()

        def block(txn: Transaction) -> tuple[CertifiedKey, CertifiedKey, CertifiedKey]:
            if txn.get("pki/root.cert") is None:  # first start; another replica may race us
                root = create_root(now, dns_names=self._dns_names)
                txn.put("pki/root.cert", root.cert_pem)
                txn.put("pki/root.key", root.key_pem())
                self.rotate_intermediate(txn, root, now)
                txn.put("state/root-secret", os.urandom(32))
            root = CertifiedKey.from_pem(
                get_required(txn, "pki/root.cert"), get_required(txn, "pki/root.key")
            )
            inter_key = get_required(txn, "pki/intermediate.key")
            inter = CertifiedKey.from_pem(get_required(txn, "pki/intermediate.cert"), inter_key)
            mroot = CertifiedKey.from_pem(get_required(txn, "pki/marbleroot.cert"), inter_key)
            return root, inter, mroot

        root, inter, mroot = run_transaction(self._store, block)
        mesh = issue_server_certificate(
            inter, common_name="veil Coordinator mesh API", dns_names=self._dns_names, now=now
        )
        return _PKI(root=root, intermediate=inter, marble_root=mroot, mesh=mesh)

    @staticmethod
    def rotate_intermediate(txn: Transaction, root: CertifiedKey, now: dt.datetime) -> CertifiedKey:
        """Write a new intermediate CA and marble root (on creation and on every update)."""
        inter, mroot = create_intermediate(root, now)
        txn.put("pki/intermediate.cert", inter.cert_pem)
        txn.put("pki/intermediate.key", inter.key_pem())
        txn.put("pki/marbleroot.cert", mroot.cert_pem)
        return inter

    def _state_token(self) -> bytes:
        """What the PKI, the TLS contexts and the manifest cache were loaded from."""
        if self._recovery:
            return b""
        raw, overrides = self._manifest_documents()
        intermediate = self._store.get("pki/intermediate.cert") or b""
        return hashlib.sha256(b"\x00".join((intermediate, raw or b"", overrides))).digest()

    def reload(self) -> None:
        """Re-read the PKI and manifest after a change, then tell the listeners (TLS reload)."""
        self._seen = self._state_token()
        self._pki = self._load_or_create_pki()
        self._manifest_cache = None
        for listener in list(self._listeners):
            listener()

    def refresh(self) -> bool:
        """Reload when another replica changed the manifest or the intermediate CA (polled).

        Compares a hash of the stored intermediate certificate and manifest with the one taken
        at the last (re)load; returns whether anything changed.
        """
        if self._recovery or self._state_token() == self._seen:
            return False
        with self._lock:
            self.reload()
        log.info("state changed by another replica", extra={"event": "state.refreshed"})
        return True

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after the manifest, its users or the certificates changed."""
        self._listeners.append(listener)

    @property
    def root_cert_pem(self) -> bytes:
        """The coordinator root certificate (deployment identity; client API TLS certificate)."""
        return self._pki.root.cert_pem

    @property
    def root(self) -> CertifiedKey:
        """Root CA with key: the client API's TLS identity (composition root only)."""
        return self._pki.root

    @property
    def intermediate_cert_pem(self) -> bytes:
        """The current intermediate CA certificate."""
        return self._pki.intermediate.cert_pem

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

    def sign_with_root(self, data: bytes) -> bytes:
        """ECDSA-SHA256 signature of ``data`` by the root key (manifests, the update log head)."""
        return self._pki.root.key.sign(data, ec.ECDSA(hashes.SHA256()))

    # -- state ---------------------------------------------------------------------------------
    def status(self) -> Status:
        """The current state."""
        if self._recovery:
            return Status.RECOVERY
        if self._store.get("manifest/raw") is None:
            return Status.ACCEPTING_MANIFEST
        return Status.ACCEPTING_MARBLES

    def manifest(self) -> Manifest | None:
        """The manifest in force (with security-version updates applied), if any."""
        if self._recovery:
            return None
        raw, overrides = self._manifest_documents()
        if raw is None:
            return None
        cache_key = raw + b"\x00" + overrides
        if self._manifest_cache is None or self._manifest_cache[0] != cache_key:
            manifest = apply_security_versions(Manifest.from_json(raw), json.loads(overrides))
            self._manifest_cache = (cache_key, manifest)
        return self._manifest_cache[1]

    def _manifest_documents(self) -> tuple[bytes | None, bytes]:
        """The stored manifest and security versions, from one snapshot where replicas share
        the store (so never the document of one state with the versions of another)."""
        if hasattr(self._store, "transact"):
            with self._store.transaction() as txn:  # read-only: commits nothing
                return txn.get("manifest/raw"), txn.get("manifest/svn") or b"{}"
        return self._store.get("manifest/raw"), self._store.get("manifest/svn") or b"{}"

    def security_versions(self) -> dict[str, int]:
        """The security-version updates applied on top of the manifest document."""
        result: dict[str, int] = json.loads(self._store.get("manifest/svn") or b"{}")
        return result

    def manifest_document(self) -> tuple[bytes, str, bytes] | None:
        """(raw manifest, fingerprint, root-key ECDSA signature over the fingerprint bytes)."""
        if self._recovery:
            return None
        raw = self._store.get("manifest/raw")
        signature = self._store.get("manifest/signature")
        if raw is None or signature is None:
            return None
        return raw, Manifest.from_json(raw).fingerprint(), signature

    def quote(self, nonce: bytes = b"") -> Evidence:
        """Evidence binding the root certificate (and the caller's nonce); served in recovery too."""
        if len(nonce) > 64:
            raise ProtocolError("the nonce is at most 64 bytes")
        return self._tee.issue(coordinator_report_data(self._pki.root.cert_der, nonce))

    def user_certificates_pem(self) -> list[bytes]:
        """PEM certificates of every manifest user (the client API's client-cert trust store)."""
        manifest = self.manifest()
        if manifest is None:
            return []
        return [u.certificate_pem.encode() for u in manifest.users.values()]

    @staticmethod
    def parse_manifest(raw: bytes) -> Manifest:
        """Parse an uploaded manifest with the size limit and the template dry run."""
        if len(raw) > MAX_MANIFEST_SIZE:
            raise ManifestError(f"the manifest is larger than {MAX_MANIFEST_SIZE} bytes")
        manifest = Manifest.from_json(raw)
        check_templates(manifest)
        return manifest

    def set_manifest(self, raw: bytes) -> ManifestSet:
        """Set the first manifest and generate its secrets (first writer wins; not in recovery)."""
        manifest = self.parse_manifest(raw)
        now = self._clock()

        def block(txn: Transaction) -> dict[str, bytes]:
            if txn.get("manifest/raw") is not None:  # another replica was first
                core.require_status(
                    Status.ACCEPTING_MARBLES, Status.ACCEPTING_MANIFEST, action="set a manifest"
                )
            for name, spec in manifest.secrets.items():
                if spec.user_defined or not spec.shared:
                    continue
                value = generate_secret(name, spec, issuer=self._pki.intermediate, now=now)
                txn.put(f"secrets/generated/{name}", encode_secret(value))
            self.store_manifest(txn, manifest, raw)
            self.log_update(txn, now, "set-manifest", manifest.fingerprint())
            # Before the commit: a manifest in force always has its recovery record and
            # seal mode, whatever moment the process dies at.
            secrets = self.update_recovery(manifest, txn)
            self.apply_seal_mode(manifest, before_commit=True)
            return secrets

        with self._lock:
            core.require_status(self.status(), Status.ACCEPTING_MANIFEST, action="set a manifest")
            secrets = run_transaction(self._store, block)
            self.apply_seal_mode(manifest)
        log.info(
            "manifest set",
            extra={"event": "manifest.set", "fingerprint": manifest.fingerprint()},
        )
        self.reload()
        return ManifestSet(manifest=manifest, recovery_secrets=secrets)

    def store_manifest(self, txn: Transaction, manifest: Manifest, raw: bytes) -> None:
        """Store a manifest with the root's signature over its fingerprint."""
        txn.put("manifest/raw", bytes(raw))
        digest = hashlib.sha256(manifest.canonical_bytes()).digest()
        txn.put("manifest/signature", self.sign_with_root(digest))
        txn.delete("manifest/svn")

    def update_recovery(self, manifest: Manifest, txn: Transaction) -> dict[str, bytes]:
        """Write the recovery record for the manifest's keys (with ``txn`` where the record
        lives in the store); return each key's secret."""
        if self._state_dir is None:
            return {}
        plan = plan_recovery(manifest, self._state_dir.data_key)
        self._state_dir.write_recovery_record(plan.record if plan else None, txn)
        return dict(plan.secrets) if plan else {}

    def stage_data_key_rotation(self, txn: Transaction, manifest: Manifest) -> dict[str, bytes]:
        """Inside ``txn``: re-seal the state under a new data key split for the manifest's
        recovery keys (earlier recovery secrets stop working); return the new secrets.
        :meth:`finish_data_key_rotation` runs after the commit."""
        if self._state_dir is None:
            return {}
        new_key = os.urandom(32)
        plan = plan_recovery(manifest, new_key)
        self._state_dir.prepare_rotation(
            txn, manifest.config.seal_mode, new_key, plan.record if plan else None
        )
        return dict(plan.secrets) if plan else {}

    def finish_data_key_rotation(self, manifest: Manifest) -> None:
        """After the commit of :meth:`stage_data_key_rotation`: put the staged files in place."""
        if self._state_dir is not None:
            self._state_dir.finish_rotation(manifest.config.seal_mode)

    def apply_seal_mode(self, manifest: Manifest, *, before_commit: bool = False) -> None:
        """Seal the data key as the manifest's ``Config.SealMode`` says.

        Before a commit only ``ProductKey``/``UniqueKey`` are applied (opening tries both); the
        key file is removed for ``Disabled`` only after the commit, so a crash never loses it.
        """
        if self._state_dir is None:
            return
        mode = manifest.config.seal_mode
        if before_commit and mode == "Disabled":
            return
        self._state_dir.reseal(mode)

    # -- marbles -------------------------------------------------------------------------------
    def activate(self, request: ActivationRequest) -> ActivationResult:
        """Verify a marble's evidence against its package and certify its CSR key."""
        return _activation.activate(self, request)

    def marble_parameters(self, cert_der: bytes) -> RenderedParameters:
        """Parameters of an activated marble authenticated by its marble certificate."""
        return _activation.marble_parameters(self, cert_der)

    # -- secrets -------------------------------------------------------------------------------
    def write_secrets(self, user_cert_der: bytes | None, values: Mapping[str, bytes]) -> str:
        """Store user-defined secrets after checking the user's WriteSecret role."""
        core.require_status(self.status(), Status.ACCEPTING_MARBLES, action="write secrets")
        manifest = self.require_manifest()
        user = core.authenticate_user(manifest, user_cert_der)
        core.authorize_secret_write(manifest, user, values)
        now = self._clock()

        def block(txn: Transaction) -> None:
            for name, value in values.items():
                txn.put(f"secrets/user/{name}", encode_secret(SecretValue(key=value)))
                self.log_update(txn, now, "secret-set", name, user=user)

        run_transaction(self._store, block)
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
        manifest = self.require_manifest()
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

    # -- updates -------------------------------------------------------------------------------
    def update(self, user_cert_der: bytes | None, raw: bytes) -> UpdateResult:
        """Apply a security-version update, or submit a full update (``POST /update``)."""
        return _updates.submit(self, user_cert_der, raw)

    def acknowledge_update(self, user_cert_der: bytes | None, raw: bytes) -> UpdateResult:
        """Acknowledge the pending full update; apply it on the last needed acknowledgement."""
        return _updates.acknowledge(self, user_cert_der, raw)

    def cancel_update(self, user_cert_der: bytes | None) -> None:
        """Cancel the pending full update."""
        _updates.cancel(self, user_cert_der)

    def pending_update(self) -> dict[str, Any] | None:
        """The pending full update: manifest, fingerprint, acknowledged and missing users."""
        return _updates.pending(self)

    def log_update(
        self, txn: Transaction, now: dt.datetime, action: str, subject: str, *, user: str = ""
    ) -> None:
        """Append to the hash-chained update log inside ``txn``."""
        append_entry(
            txn, now=now, action=action, subject=subject, user=user, sign=self.sign_with_root
        )

    def update_log(self) -> list[str]:
        """The update log entries (canonical JSON lines)."""
        return list(self.signed_update_log().entries)

    def signed_update_log(self) -> UpdateLog:
        """The entries and the signed head (``GET /api/v2/update``)."""
        core.require_status(
            self.status(),
            Status.ACCEPTING_MANIFEST,
            Status.ACCEPTING_MARBLES,
            action="read the update log",
        )
        with self._store.transaction() as txn:
            return read_log(txn.get, txn.keys("updatelog/"))

    # -- recovery ------------------------------------------------------------------------------
    def recovery_public_key_pem(self) -> bytes:
        """The ephemeral key recovery secrets may be encrypted to (recovery mode only)."""
        core.require_status(self.status(), Status.RECOVERY, action="recover")
        assert self._session is not None  # noqa: S101 - recovery mode always has a session
        return self._session.public_key_pem()

    def recover(self, secret: bytes, signature: bytes) -> RecoveryProgress:
        """Take one signed recovery secret; reopen the sealed state when enough have arrived."""
        with self._lock:
            core.require_status(self.status(), Status.RECOVERY, action="recover")
            assert self._session is not None  # noqa: S101 - recovery mode always has a session
            data_key = self._session.submit(secret, signature)
            if data_key is None:
                return RecoveryProgress(remaining=self._session.remaining, recovered=False)
            if self._state_dir is None:
                raise StateError("this coordinator keeps no sealed state to recover")
            try:
                store = self._state_dir.open_with(data_key)
            except Error:
                self._session.reset()
                raise VerificationError(
                    "the recovery secrets do not unlock the sealed state; every key holder must "
                    "upload again"
                ) from None
            self._store = store
            self._recovery = False
            self._session = None
            manifest = self.manifest()
            self._state_dir.reseal(manifest.config.seal_mode if manifest else "ProductKey")
        log.warning("sealed state recovered", extra={"event": "state.recovered"})
        self.reload()
        return RecoveryProgress(remaining=0, recovered=True)

    # -- helpers -------------------------------------------------------------------------------
    def require_manifest(self) -> Manifest:
        """The manifest in force; raise a retryable StateError when none is set."""
        manifest = self.manifest()
        if manifest is None:
            raise StateError("no manifest has been set yet", retryable=True)
        return manifest

    @property
    def store(self) -> Store:
        """The store in use (tests inspect the whole state through it)."""
        return self._store

    @property
    def clock(self) -> Callable[[], dt.datetime]:
        """The service's clock."""
        return self._clock

    @property
    def lock(self) -> threading.RLock:
        """The lock serialising state changes."""
        return self._lock

    @property
    def tee(self) -> CoordinatorTEE:
        """The TEE this coordinator runs in."""
        return self._tee

    @property
    def sealed_state(self) -> SealedState | None:
        """Where the data key is kept (data directory, or per-replica copies in etcd)."""
        return self._state_dir

    @property
    def anchors(self) -> TrustAnchors:
        """Trust anchors for marble evidence."""
        return self._anchors

    @property
    def collateral(self) -> Collateral:
        """Collateral for hardware marble evidence (DCAP collateral, SNP VCEK)."""
        return self._collateral

    @property
    def intermediate(self) -> CertifiedKey:
        """The current intermediate CA (marble certificates)."""
        return self._pki.intermediate

    @property
    def pki_certs_der(self) -> dict[str, bytes]:
        """DER of root, intermediate and marble root (template context)."""
        return {
            "root": self._pki.root.cert_der,
            "intermediate": self._pki.intermediate.cert_der,
            "marble_root": self._pki.marble_root.cert_der,
        }
