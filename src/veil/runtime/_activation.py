"""Marble activation: evidence bound to a fresh key → certificate and parameters.

The marble generates its TLS key itself; the coordinator only ever sees the CSR. Without the
coordinator root the marble cannot authenticate the coordinator and says so loudly.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from veil._net import client_ssl_context
from veil.attestation import (
    Evidence,
    SimulatedIdentity,
    SimulatedPlatform,
    TEEKind,
    marble_report_data,
    measure,
)
from veil.attestation.issuers import ConfigfsTsmIssuer, EvidenceIssuer, GramineIssuer
from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    Error,
    NetworkError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.manifest import RenderedParameters
from veil.pki import build_csr, generate_key, private_key_pem, spki_der

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarbleSettings:
    """How a marble finds and trusts its coordinator (``VEIL_MARBLE_*`` variables)."""

    coordinator_addr: str
    marble_type: str
    uuid_file: Path
    dns_names: tuple[str, ...] = ("localhost",)
    coordinator_root_pem: bytes | None = None
    simulated_platform: Path | None = None
    entry_point: str = "serve"
    measured_files: tuple[Path, ...] = ()
    tee: str = "simulated"
    device_root: Path | None = None


@dataclass(frozen=True)
class Activation:
    """An activated marble: its own key, its certificate chain and (maybe) its parameters."""

    private_key_pem: bytes
    certificate_chain_pem: bytes
    marble_root_pem: bytes
    coordinator_root_pem: bytes
    uuid: str
    parameters: RenderedParameters | None
    pending_secrets: tuple[str, ...]


def _load_uuid(path: Path) -> str:
    if path.exists():
        text = path.read_text().strip()
        try:
            return str(uuidlib.UUID(text))
        except ValueError:
            raise ConfigurationError(f"UUID file {path} does not hold a UUID") from None
    value = str(uuidlib.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _params(doc: Any) -> RenderedParameters:
    if not isinstance(doc, dict):
        raise ProtocolError("the coordinator sent malformed parameters")
    return RenderedParameters(
        files={k: base64.b64decode(v) for k, v in doc.get("files", {}).items()},
        env={k: base64.b64decode(v) for k, v in doc.get("env", {}).items()},
        argv=tuple(doc.get("argv", [])),
    )


def _jsend(resp: httpx.Response) -> Any:
    try:
        doc = resp.json()
    except ValueError:
        raise ProtocolError(
            f"the coordinator answered HTTP {resp.status_code} without JSON"
        ) from None
    if resp.status_code == 200:
        return doc.get("data")
    message = str(doc.get("message", ""))
    if resp.status_code == 503:
        raise StateError(message, retryable=True)
    if resp.status_code in (401, 403):
        raise AuthorizationError(f"activation refused by the coordinator: {message}")
    raise Error(f"the coordinator refused: {message} (HTTP {resp.status_code})")


def _issuer(settings: MarbleSettings) -> EvidenceIssuer:
    """The evidence issuer of the TEE this marble runs in (explicit; never a fallback)."""
    if settings.tee == "simulated":
        if settings.simulated_platform is None:
            raise ConfigurationError("--tee simulated needs --simulated-platform DIR")
        return _SimulatedIssuer(
            SimulatedPlatform(settings.simulated_platform),
            SimulatedIdentity(
                unique_id=measure(settings.entry_point, extra_files=settings.measured_files)
            ),
        )
    if settings.tee == "gramine":
        return GramineIssuer(settings.device_root or Path("/dev/attestation"))
    if settings.tee in ("tdx", "sev-snp"):
        return ConfigfsTsmIssuer(
            settings.device_root or Path("/sys/kernel/config/tsm/report"),
            provider="tdx_guest" if settings.tee == "tdx" else "sev_guest",
        )
    raise ConfigurationError(
        f"unknown TEE {settings.tee!r}: use simulated, gramine, tdx or sev-snp"
    )


class _SimulatedIssuer:
    def __init__(self, platform: SimulatedPlatform, identity: SimulatedIdentity) -> None:
        self.platform = platform
        self.identity = identity
        self.tee: TEEKind = "simulated"

    def issue(self, report_data: bytes) -> Evidence:
        return self.platform.issue(self.identity, report_data)


def activate(settings: MarbleSettings) -> Activation:
    """Activate once: make a key and CSR, bind them into evidence, ask the coordinator."""
    issuer = _issuer(settings)
    if settings.coordinator_root_pem is None:
        log.warning(
            "THE COORDINATOR IS NOT AUTHENTICATED: no coordinator root certificate was given, "
            "so this marble cannot tell the real coordinator from an impostor",
            extra={"event": "coordinator.unauthenticated"},
        )
    uuid = _load_uuid(settings.uuid_file)
    key = generate_key()
    csr = build_csr(key, common_name=uuid, dns_names=settings.dns_names)
    evidence = issuer.issue(marble_report_data(spki_der(key.public_key())))
    body = {
        "marbleType": settings.marble_type,
        "uuid": uuid,
        "csr": base64.b64encode(csr).decode(),
        "evidence": base64.b64encode(evidence.raw).decode(),
        "tee": evidence.tee,
    }
    ctx = client_ssl_context(settings.coordinator_root_pem)
    try:
        with httpx.Client(verify=ctx, timeout=30) as http:
            resp = http.post(
                f"https://{settings.coordinator_addr}/api/v2/marble/activate", json=body
            )
    except httpx.HTTPError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise VerificationError(
                "the coordinator's TLS certificate does not chain to the given coordinator root"
            ) from None
        raise NetworkError(
            f"cannot reach the coordinator at {settings.coordinator_addr}: {exc}"
        ) from None
    data = _jsend(resp)
    chain = (data["certificate"] + data["intermediate"]).encode()
    params = _params(data["parameters"]) if data.get("parameters") else None
    log.info(
        "activated",
        extra={"event": "marble.activated", "uuid": uuid, "marble_type": settings.marble_type},
    )
    return Activation(
        private_key_pem=private_key_pem(key),
        certificate_chain_pem=chain,
        marble_root_pem=data["marbleRoot"].encode(),
        coordinator_root_pem=data["coordinatorRoot"].encode(),
        uuid=uuid,
        parameters=params,
        pending_secrets=tuple(data.get("pendingSecrets", [])),
    )


def fetch_parameters(settings: MarbleSettings, activation: Activation) -> RenderedParameters:
    """Fetch parameters with the marble certificate; raises a retryable StateError while pending."""
    root = settings.coordinator_root_pem or activation.coordinator_root_pem
    ctx = client_ssl_context(
        root,
        client_cert_pem=activation.certificate_chain_pem,
        client_key_pem=activation.private_key_pem,
    )
    try:
        with httpx.Client(verify=ctx, timeout=30) as http:
            resp = http.get(f"https://{settings.coordinator_addr}/api/v2/marble/parameters")
    except httpx.HTTPError as exc:
        raise NetworkError(f"cannot reach the coordinator: {exc}") from None
    return _params(_jsend(resp)["parameters"])


def wait_for_parameters(
    settings: MarbleSettings,
    activation: Activation,
    *,
    timeout: float | None = None,
    backoff: Sequence[float] = (0.2, 0.5, 1.0, 2.0),
) -> RenderedParameters:
    """Poll with backoff until the pending user-defined secrets are set."""
    deadline = None if timeout is None else time.monotonic() + timeout
    attempt = 0
    while True:
        try:
            return fetch_parameters(settings, activation)
        except (StateError, NetworkError) as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            delay = backoff[min(attempt, len(backoff) - 1)]
            log.info(
                "parameters not available yet; retrying",
                extra={"event": "marble.waiting", "reason": str(exc), "retry_in_s": delay},
            )
            time.sleep(delay)
            attempt += 1
