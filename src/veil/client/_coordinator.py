"""Coordinator client SDK: verify a deployment, then talk to it over a pinned TLS channel."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from veil._net import client_ssl_context
from veil.attestation import (
    TEE_KINDS,
    Claims,
    Evidence,
    Policy,
    TrustAnchors,
    coordinator_report_data,
    verify,
)
from veil.coordinator._updatelog import parse_log_response, verify_update_log
from veil.errors import (
    AuthorizationError,
    Error,
    ManifestError,
    NetworkError,
    NotFoundError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.manifest import Manifest
from veil.pki import verify_issued_by

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class VerifiedCoordinator:
    """A coordinator whose evidence was verified: its root and intermediate, and the claims."""

    address: str
    root_pem: bytes
    intermediate_pem: bytes
    claims: Claims


def _raise_for(resp: httpx.Response) -> Any:
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ProtocolError(
            f"the coordinator answered HTTP {resp.status_code} without a JSend body"
        )
    if resp.status_code == 200 and doc.get("status") == "success":
        return doc.get("data")
    message = str(doc.get("message") or f"HTTP {resp.status_code}")
    if resp.status_code in (401, 403):
        raise AuthorizationError(message, authenticated=resp.status_code == 403)
    if resp.status_code == 404:
        raise NotFoundError(message)
    if resp.status_code in (409, 503):
        raise StateError(message, retryable=resp.status_code == 503)
    if resp.status_code == 400:
        raise ProtocolError(message)
    raise Error(f"the coordinator failed: {message}")


def _split_chain(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise VerificationError("the coordinator's certificate chain does not parse") from None


def verify_coordinator(
    address: str,
    policy: Policy,
    *,
    trust_anchors: TrustAnchors,
    now: dt.datetime | None = None,
) -> VerifiedCoordinator:
    """Attest the coordinator at ``address`` (``host:port``) and return its verified root.

    Steps: (1) fetch ``/api/v2/quote`` with a fresh nonce over TLS that is *not yet* trusted;
    (2) the chain must be intermediate → root; (3) the evidence must verify against ``policy``
    and bind SHA-256 of exactly this root certificate and our nonce. Only then is the root
    trusted for later calls.
    """
    now = now or dt.datetime.now(dt.UTC)
    nonce = os.urandom(16)
    nonce_b64 = base64.urlsafe_b64encode(nonce).decode().rstrip("=")
    try:
        with httpx.Client(verify=client_ssl_context(None), timeout=TIMEOUT) as http:
            data = _raise_for(
                http.get(f"https://{address}/api/v2/quote", params={"nonce": nonce_b64})
            )
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach the coordinator at {address}: {exc}") from None
    if not isinstance(data, dict) or data.get("tee") not in TEE_KINDS:
        raise ProtocolError("the coordinator's quote answer is malformed")
    chain = _split_chain(str(data.get("cert", "")).encode())
    if len(chain) != 2:
        raise VerificationError("the coordinator must present intermediate and root certificates")
    intermediate, root = chain
    verify_issued_by(intermediate, root, now)
    root_der = root.public_bytes(serialization.Encoding.DER)
    try:
        raw_quote = base64.b64decode(str(data.get("quote", "")), validate=True)
    except (ValueError, binascii.Error):
        raise ProtocolError("the coordinator's quote is not valid base64") from None
    claims = verify(
        Evidence(tee=data["tee"], raw=raw_quote),
        policy,
        trust_anchors=trust_anchors,
        expected_report_data=coordinator_report_data(root_der, nonce),
        now=now,
    )
    pem = serialization.Encoding.PEM
    return VerifiedCoordinator(
        address=address,
        root_pem=root.public_bytes(pem),
        intermediate_pem=intermediate.public_bytes(pem),
        claims=claims,
    )


def insecure_coordinator_root(address: str) -> bytes:
    """The root certificate the coordinator presents, WITHOUT verifying its evidence.

    Only for simulation and debugging: anyone on the network path can present another root.
    """
    try:
        with httpx.Client(verify=client_ssl_context(None), timeout=TIMEOUT) as http:
            data = _raise_for(http.get(f"https://{address}/api/v2/quote"))
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach the coordinator at {address}: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("the coordinator's quote answer is malformed")
    chain = _split_chain(str(data.get("cert", "")).encode())
    if not chain:
        raise VerificationError("the coordinator presents no certificate")
    return chain[-1].public_bytes(serialization.Encoding.PEM)


class CoordinatorClient:
    """Calls to a coordinator whose root certificate is pinned (see :func:`verify_coordinator`).

    ``client_cert`` is ``(certificate PEM, private key PEM)`` of a manifest user.
    """

    def __init__(
        self,
        address: str,
        *,
        root_pem: bytes,
        client_cert: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.address = address
        self._root_pem = root_pem
        cert, key = client_cert if client_cert else (None, None)
        self._has_client_cert = cert is not None
        ctx = client_ssl_context(root_pem, client_cert_pem=cert, client_key_pem=key)
        self._http = httpx.Client(base_url=f"https://{address}", verify=ctx, timeout=TIMEOUT)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.RemoteProtocolError as exc:
            if self._has_client_cert:
                raise AuthorizationError(
                    "the coordinator closed the connection after the TLS handshake: your client "
                    "certificate is most likely not one of the manifest's users",
                    authenticated=False,
                ) from None
            raise NetworkError(f"cannot reach the coordinator at {self.address}: {exc}") from None
        except httpx.HTTPError as exc:
            text = str(exc)
            if "CERTIFICATE" in text.upper() or "ALERT" in text.upper():
                raise AuthorizationError(
                    f"the TLS handshake with the coordinator failed ({text}): either your client "
                    "certificate belongs to no manifest user, or the coordinator's certificate "
                    "is not the verified root",
                    authenticated=False,
                ) from None
            raise NetworkError(f"cannot reach the coordinator at {self.address}: {exc}") from None
        return _raise_for(resp)

    def status(self) -> tuple[int, str]:
        """(code, message) of the coordinator state."""
        data = self._call("GET", "/api/v2/status")
        return int(data["code"]), str(data["message"])

    def set_manifest(self, manifest_json: bytes) -> dict[str, bytes]:
        """Set the manifest (``POST /api/v2/manifest``); return the encrypted recovery secrets."""
        Manifest.from_json(manifest_json)  # refuse locally first, with the same error
        data = self._call(
            "POST", "/api/v2/manifest", json={"manifest": base64.b64encode(manifest_json).decode()}
        )
        secrets = (data or {}).get("recoverySecrets") or {}
        return {str(k): _b64decode(v, "recovery secret") for k, v in secrets.items()}

    def manifest(self) -> tuple[bytes, str]:
        """(raw manifest, fingerprint) after checking the root key's signature over it."""
        data = self._call("GET", "/api/v2/manifest")
        if not data or not data.get("manifest"):
            raise NotFoundError("no manifest has been set on the coordinator yet")
        raw = base64.b64decode(data["manifest"])
        manifest = Manifest.from_json(raw)
        if manifest.fingerprint() != data.get("manifestFingerprint"):
            raise VerificationError("the coordinator's manifest does not match its fingerprint")
        root = x509.load_pem_x509_certificate(self._root_pem).public_key()
        assert isinstance(root, ec.EllipticCurvePublicKey)  # noqa: S101 - coordinator roots are ECDSA
        digest = bytes.fromhex(manifest.fingerprint())
        try:
            root.verify(
                base64.b64decode(data["manifestSignatureRootECDSA"]),
                digest,
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            raise VerificationError(
                "the manifest signature of the coordinator root is invalid"
            ) from None
        return raw, manifest.fingerprint()

    def security_version_updates(self) -> dict[str, int]:
        """Security-version updates applied on top of the signed manifest document."""
        data = self._call("GET", "/api/v2/manifest") or {}
        updates = data.get("securityVersionUpdates") or {}
        return {str(k): int(v) for k, v in updates.items()}

    def verify_manifest(self, expected_manifest_json: bytes) -> str:
        """Raise unless the deployed manifest is ``expected_manifest_json``; return the fingerprint."""
        expected = Manifest.from_json(expected_manifest_json).fingerprint()
        _, deployed = self.manifest()
        if deployed != expected:
            raise ManifestError(
                f"the deployed manifest {deployed} is not the expected {expected}: do not proceed"
            )
        return deployed

    def set_secrets(self, secrets: dict[str, bytes]) -> None:
        """Upload user-defined secrets (needs a user certificate with ``WriteSecret``)."""
        body = {"secrets": {k: {"Key": base64.b64encode(v).decode()} for k, v in secrets.items()}}
        self._call("POST", "/api/v2/secrets", json=body)

    def get_secrets(self, *names: str) -> dict[str, dict[str, bytes]]:
        """Read secrets (needs ``ReadSecret``); values are decoded bytes per field."""
        data = self._call("GET", "/api/v2/secrets", params=[("s", n) for n in names])
        return {
            name: {k: base64.b64decode(v) for k, v in fields.items()}
            for name, fields in data["secrets"].items()
        }

    def update_log(self) -> list[str]:
        """The coordinator's update log (entries as served; see :meth:`verified_update_log`)."""
        return list(self._call("GET", "/api/v2/update")["updateLog"])

    def verified_update_log(self) -> list[str]:
        """The update log after checking its hash chain and the root's signature on its head."""
        log = parse_log_response(self._call("GET", "/api/v2/update"))
        verify_update_log(log.entries, log.head, _root_key(self._root_pem))
        return list(log.entries)

    def update_apply(self, manifest_json: bytes) -> dict[str, Any]:
        """Submit a security-version update (applied at once) or a full manifest update."""
        return dict(self._post_manifest("/api/v2/update", manifest_json))

    def update_acknowledge(self, manifest_json: bytes) -> dict[str, Any]:
        """Acknowledge the pending full update with the same manifest."""
        return dict(self._post_manifest("/api/v2/update-manifest", manifest_json))

    def update_cancel(self) -> None:
        """Cancel the pending full update."""
        self._call("POST", "/api/v2/update-cancel", json={})

    def update_pending(self) -> dict[str, Any]:
        """The pending update: manifest (base64), fingerprint, acknowledged and missing users."""
        return dict(self._call("GET", "/api/v2/update-manifest"))

    def certificates(self) -> tuple[bytes, bytes]:
        """(intermediate PEM, root PEM) served by the coordinator; the root must be the pinned one."""
        data = self._call("GET", "/api/v2/quote")
        chain = _split_chain(str(data.get("cert", "")).encode())
        if len(chain) != 2:
            raise VerificationError("the coordinator must present intermediate and root")
        pem = serialization.Encoding.PEM
        intermediate, root = (c.public_bytes(pem) for c in chain)
        pinned = x509.load_pem_x509_certificate(self._root_pem).public_bytes(pem)
        if root != pinned:
            raise VerificationError("the coordinator presents another root than the pinned one")
        verify_issued_by(chain[0], chain[1], dt.datetime.now(dt.UTC))
        return intermediate, root

    def recovery_public_key(self) -> bytes:
        """The ephemeral RSA key (PEM) a coordinator in recovery mode accepts secrets for."""
        return str(self._call("GET", "/api/v2/recover/public-key")["publicKey"]).encode()

    def recover(self, secret: bytes, signature: bytes) -> tuple[int, str]:
        """Upload one recovery secret with its signature; return (remaining, message)."""
        data = self._call(
            "POST",
            "/api/v2/recover",
            json={
                "recoverySecret": base64.b64encode(secret).decode(),
                "recoverySecretSignature": base64.b64encode(signature).decode(),
            },
        )
        return int(data["remaining"]), str(data["statusMessage"])

    def _post_manifest(self, path: str, manifest_json: bytes) -> Any:
        body = {"manifest": base64.b64encode(manifest_json).decode()}
        return self._call("POST", path, json=body)


def _b64decode(value: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        raise ProtocolError(f"the coordinator sent a {what} that is not base64") from None


def _root_key(root_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = x509.load_pem_x509_certificate(root_pem).public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("the coordinator root key is not ECDSA")
    return key
