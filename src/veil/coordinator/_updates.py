"""Manifest updates (part of :class:`CoordinatorService`): security versions and full updates.

Security-version updates apply at once and keep the manifest document and its signature; full
updates wait for ``UpdateThreshold`` acknowledgements, then replace the manifest, drop or keep
secrets by MarbleRun's rules, optionally rotate the root secret, rotate the intermediate CA and
re-sign. Every change appends to the hash-chained update log.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veil.coordinator import _update_rules as rules
from veil.coordinator import core
from veil.coordinator._secrets import encode_secret, generate_secret
from veil.coordinator.core import Status
from veil.coordinator.store import Transaction, run_transaction
from veil.errors import ManifestError, NotFoundError, ProtocolError, StateError, StorageError
from veil.manifest import Manifest
from veil.pki import CertifiedKey

if TYPE_CHECKING:
    from veil.coordinator.service import CoordinatorService

log = logging.getLogger(__name__)
_PENDING = "update/pending"


@dataclass(frozen=True)
class UpdateResult:
    """The outcome of an update request."""

    applied: bool
    kind: str  # "security-version" or "manifest"
    fingerprint: str
    acknowledged: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    remaining: int = 0
    recovery_secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)


def _user(svc: CoordinatorService, cert_der: bytes | None) -> tuple[Manifest, str]:
    core.require_status(svc.status(), Status.ACCEPTING_MARBLES, action="update the manifest")
    manifest = svc.require_manifest()
    return manifest, core.authenticate_user(manifest, cert_der)


def _current(txn: Transaction) -> Manifest:
    """The manifest in force as this transaction sees it (another replica may have changed it)."""
    raw = txn.get("manifest/raw")
    if raw is None:
        raise StateError("no manifest has been set yet", retryable=True)
    overrides = json.loads(txn.get("manifest/svn") or b"{}")
    return rules.apply_security_versions(Manifest.from_json(raw), overrides)


def _root(txn: Transaction) -> CertifiedKey:
    cert, key = txn.get("pki/root.cert"), txn.get("pki/root.key")
    if cert is None or key is None:
        raise StateError("the coordinator state has no root CA")
    return CertifiedKey.from_pem(cert, key)


def _reissue_shared_certificates(
    txn: Transaction, manifest: Manifest, issuer: CertifiedKey, now: dt.datetime
) -> None:
    for name, spec in manifest.secrets.items():
        if spec.shared and not spec.user_defined and spec.type.startswith("cert-"):
            value = generate_secret(name, spec, issuer=issuer, now=now)
            txn.put(f"secrets/generated/{name}", encode_secret(value))


def submit(svc: CoordinatorService, cert_der: bytes | None, raw: bytes) -> UpdateResult:
    """``POST /api/v2/update``: a security-version update, or a new pending full update."""
    if len(raw) > 1024 * 1024:
        raise ProtocolError("the update is larger than 1048576 bytes")
    manifest, user = _user(svc, cert_der)
    overrides = rules.parse_security_version_update(raw)
    if overrides is not None:
        return _security_version_update(svc, manifest, user, overrides)
    rules.authorize_update(manifest, user)
    new = svc.parse_manifest(raw)
    rules.check_not_same(manifest, new)
    now = svc.clock()

    def block(txn: Transaction) -> tuple[Manifest, UpdateResult]:
        current = _current(txn)
        rules.authorize_update(current, user)
        if txn.get(_PENDING) is not None:
            raise StateError("another manifest update is pending; acknowledge or cancel it first")
        doc = {
            "manifest": base64.b64encode(raw).decode(),
            "fingerprint": new.fingerprint(),
            "acks": [user],
            "submitted": now.isoformat(),
        }
        svc.log_update(txn, now, "update-submitted", new.fingerprint(), user=user)
        return current, _record_or_apply(svc, txn, current, doc, now)

    with svc.lock:
        manifest, result = run_transaction(svc.store, block)
        log.info(
            "manifest update submitted",
            extra={"event": "update.submitted", "user": user, "fingerprint": new.fingerprint()},
        )
        return _after(svc, manifest, result)


def _security_version_update(
    svc: CoordinatorService, manifest: Manifest, user: str, overrides: dict[str, int]
) -> UpdateResult:
    rules.apply_security_versions(manifest, overrides, user=user)
    now = svc.clock()

    def block(txn: Transaction) -> None:  # one transaction: a crash leaves all or nothing
        raw = txn.get("manifest/raw")
        if raw is None:
            raise StateError("no manifest has been set yet", retryable=True)
        merged = {**json.loads(txn.get("manifest/svn") or b"{}"), **overrides}
        rules.apply_security_versions(_current(txn), overrides, user=user)
        updated = rules.apply_security_versions(Manifest.from_json(raw), merged)
        txn.put("manifest/svn", json.dumps(merged, sort_keys=True).encode())
        intermediate = svc.rotate_intermediate(txn, _root(txn), now)
        _reissue_shared_certificates(txn, updated, intermediate, now)
        for name, svn in sorted(overrides.items()):
            svc.log_update(txn, now, "update-security-version", f"{name}={svn}", user=user)

    with svc.lock:
        run_transaction(svc.store, block)
        svc.reload()
    log.info(
        "security versions updated",
        extra={"event": "update.security_version", "user": user, "packages": sorted(overrides)},
    )
    return UpdateResult(applied=True, kind="security-version", fingerprint=manifest.fingerprint())


def _pending_doc(svc: CoordinatorService) -> dict[str, Any] | None:
    raw = svc.store.get(_PENDING)
    return None if raw is None else dict(json.loads(raw))


def _status(manifest: Manifest, doc: dict[str, Any]) -> tuple[list[str], list[str], int]:
    updaters, needed = rules.required_acknowledgers(manifest)
    acks = [a for a in doc["acks"] if a in updaters]
    missing = [u for u in updaters if u not in acks]
    return acks, missing, max(needed - len(acks), 0)


def _record_or_apply(
    svc: CoordinatorService,
    txn: Transaction,
    manifest: Manifest,
    doc: dict[str, Any],
    now: dt.datetime,
) -> UpdateResult:
    """Inside ``txn``: store the pending update, or apply it when enough users acknowledged."""
    acks, missing, remaining = _status(manifest, doc)
    if remaining > 0:
        txn.put(_PENDING, json.dumps(doc).encode())
        return UpdateResult(
            applied=False,
            kind="manifest",
            fingerprint=doc["fingerprint"],
            acknowledged=tuple(acks),
            missing=tuple(missing),
            remaining=remaining,
        )
    secrets = _apply_full_update(svc, txn, manifest, base64.b64decode(doc["manifest"]), now)
    return UpdateResult(
        applied=True,
        kind="manifest",
        fingerprint=doc["fingerprint"],
        acknowledged=tuple(acks),
        recovery_secrets=secrets,
    )


def _after(svc: CoordinatorService, old: Manifest, result: UpdateResult) -> UpdateResult:
    """After the commit of an applied update: reload, recovery record, seal mode."""
    if not result.applied:
        return result
    new = svc.require_manifest()
    if new.recovery_keys != old.recovery_keys:
        svc.finish_data_key_rotation(new)
    svc.apply_seal_mode(new)
    svc.reload()
    log.info(
        "manifest updated", extra={"event": "update.applied", "fingerprint": new.fingerprint()}
    )
    return result


def _apply_full_update(
    svc: CoordinatorService, txn: Transaction, old: Manifest, raw: bytes, now: dt.datetime
) -> dict[str, bytes]:
    """Replace the manifest inside ``txn`` (secrets, root secret, intermediate, signature, log,
    and a data key rotation when the recovery keys change); return new recovery secrets."""
    new = svc.parse_manifest(raw)
    for name in rules.secrets_to_drop(old, new):
        txn.delete(f"secrets/generated/{name}")
        txn.delete(f"secrets/user/{name}")
        txn.delete(f"secrets/previous/{name}")
    if new.config.rotate_root_secret:
        txn.put("state/root-secret-previous", txn.get("state/root-secret") or b"")
        txn.put("state/root-secret", os.urandom(32))
        for name, spec in new.secrets.items():
            key = f"secrets/generated/{name}"
            current = txn.get(key)
            if spec.shared and spec.type == "symmetric-key" and current is not None:
                txn.put(f"secrets/previous/{name}", current)
                txn.delete(key)
    intermediate = svc.rotate_intermediate(txn, _root(txn), now)
    for name, spec in new.secrets.items():
        key = f"secrets/generated/{name}"
        if spec.shared and not spec.user_defined and txn.get(key) is None:
            txn.put(key, encode_secret(generate_secret(name, spec, issuer=intermediate, now=now)))
    svc.store_manifest(txn, new, raw)
    txn.delete(_PENDING)
    svc.log_update(txn, now, "update-manifest", new.fingerprint())
    if new.config.seal_mode != "Disabled":
        svc.apply_seal_mode(new, before_commit=True)
    if new.recovery_keys != old.recovery_keys:
        return svc.stage_data_key_rotation(txn, new)  # last: re-seals every row written above
    return {}


def acknowledge(svc: CoordinatorService, cert_der: bytes | None, raw: bytes) -> UpdateResult:
    """``POST /api/v2/update-manifest``: acknowledge the pending update with its exact manifest."""
    manifest, user = _user(svc, cert_der)
    rules.authorize_update(manifest, user)
    given = svc.parse_manifest(raw).fingerprint()
    now = svc.clock()

    def block(txn: Transaction) -> tuple[Manifest, UpdateResult]:
        current = _current(txn)
        blob = txn.get(_PENDING)
        if blob is None:
            raise NotFoundError("no manifest update is pending")
        doc = json.loads(blob)
        if doc["fingerprint"] != given:
            raise ProtocolError(
                f"the manifest acknowledged ({given}) is not the pending update "
                f"({doc['fingerprint']})"
            )
        if user in doc["acks"]:
            raise StateError(f"user {user!r} already acknowledged this update")
        doc["acks"].append(user)
        svc.log_update(txn, now, "update-acknowledged", given, user=user)
        return current, _record_or_apply(svc, txn, current, doc, now)

    def cancel_block(txn: Transaction) -> None:
        blob = txn.get(_PENDING)
        if blob is not None and json.loads(blob)["fingerprint"] == given:
            txn.delete(_PENDING)
            svc.log_update(txn, svc.clock(), "update-cancelled", given)

    with svc.lock:
        try:
            manifest, result = run_transaction(svc.store, block)
        except (ManifestError, StorageError) as exc:
            if getattr(exc, "retryable", False):
                raise  # lost to concurrent writers: nothing was decided
            # The update cannot be applied (MarbleRun: auto-cancel); the transaction rolled back.
            run_transaction(svc.store, cancel_block)
            raise
        return _after(svc, manifest, result)


def cancel(svc: CoordinatorService, cert_der: bytes | None) -> None:
    """``POST /api/v2/update-cancel``: drop the pending update."""
    manifest, user = _user(svc, cert_der)
    rules.authorize_update(manifest, user)

    def block(txn: Transaction) -> None:
        blob = txn.get(_PENDING)
        if blob is None:
            raise NotFoundError("no manifest update is pending")
        txn.delete(_PENDING)
        svc.log_update(
            txn, svc.clock(), "update-cancelled", json.loads(blob)["fingerprint"], user=user
        )

    run_transaction(svc.store, block)
    log.info("manifest update cancelled", extra={"event": "update.cancelled", "user": user})


def pending(svc: CoordinatorService) -> dict[str, Any] | None:
    """The pending update with acknowledged and missing users; None when there is none."""
    manifest = svc.manifest()
    doc = _pending_doc(svc)
    if manifest is None or doc is None:
        return None
    acks, missing, remaining = _status(manifest, doc)
    return {
        "manifest": doc["manifest"],
        "fingerprint": doc["fingerprint"],
        "acknowledged": acks,
        "missing": missing,
        "remaining": remaining,
    }
