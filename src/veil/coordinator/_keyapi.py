"""The key API: a replica without the data key obtains it from a live peer (ADR 0008).

MarbleRun's ``coordinator-key-api`` (``:5433``) re-created. Both sides attest, and each checks the
other against its *own* identity, never against a list an operator could widen:

1. The requester connects over TLS to the serving replica (whose certificate is ephemeral and
   self-signed) and sends evidence whose report data binds an ephemeral P-256 key it generated,
   plus a fresh nonce.
2. The server verifies that evidence with its own trust anchors (so simulated evidence only when
   the server itself runs simulated, under the same pinned simulated root) against a policy made
   from its own claims: the same TEE kind and UniqueID, or under ``SealMode: ProductKey`` the same
   SignerID and ProductID at a security version not lower than its own.
3. The server answers with its own evidence, whose report data binds its TLS certificate key, the
   requester's nonce and an ephemeral ECDH key, and the data key encrypted (ECDH + HKDF +
   AES-256-GCM) to the requester's attested key.
4. The requester verifies the server's evidence the same way, checks that it binds the TLS key it
   is talking to and its nonce, and only then decrypts.

The data key thus travels inside the attested TLS channel and is readable only by the attested
requester: Python's ``ssl`` cannot accept an unknown self-signed client certificate, so the
requester's key is bound at this layer instead of in the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veil._net import client_ssl_context, server_ssl_context
from veil.attestation import (
    REPORT_DATA_SIZE,
    Claims,
    Evidence,
    Policy,
    TEEKind,
    TrustAnchors,
    verify,
    verify_evidence,
)
from veil.errors import Error, NetworkError, ProtocolError, VerificationError
from veil.pki import generate_key, private_key_pem, self_signed_user_certificate, spki_der

__all__ = ["KeyServer", "request_data_key"]

log = logging.getLogger(__name__)
_LABEL = b"veil-coordinator-key-api/v1\x00"
_MAX_FRAME = 256 * 1024
_P256 = ec.SECP256R1()


class _TEE(Protocol):
    tee: TEEKind

    def issue(self, report_data: bytes) -> Evidence: ...


def key_api_report_data(role: bytes, *parts: bytes) -> bytes:
    """Report data of key API evidence: SHA-256(label ‖ role ‖ length-prefixed parts)."""
    h = hashlib.sha256(_LABEL + role + b"\x00")
    for part in parts:
        h.update(struct.pack(">I", len(part)) + part)
    return h.digest().ljust(REPORT_DATA_SIZE, b"\x00")


def own_claims(tee: _TEE, anchors: TrustAnchors, now: dt.datetime) -> Claims:
    """This replica's own verified claims: the identity every peer must share."""
    evidence = tee.issue(key_api_report_data(b"self"))
    return verify_evidence(evidence, trust_anchors=anchors, now=now)


def peer_policy(own: Claims, seal_mode: str, *, serving: bool) -> Policy:
    """What a peer must be: the same UniqueID, or under ProductKey the same signer and product.

    The serving side also refuses a requester whose security version is lower than its own.
    """
    if seal_mode == "UniqueKey":
        return Policy(tee=own.tee, unique_id=own.unique_id, debug=own.debug)
    return Policy(
        tee=own.tee,
        signer_id=own.signer_id,
        product_id=own.product_id,
        min_security_version=own.security_version if serving else 0,
        debug=own.debug,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _field(doc: dict[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f"the key API message has no {name}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ProtocolError(f"the key API field {name} is not base64") from None


def _evidence(doc: dict[str, Any]) -> Evidence:
    tee = doc.get("tee")
    if not isinstance(tee, str):
        raise ProtocolError("the key API message names no TEE")
    return Evidence(tee=tee, raw=_field(doc, "evidence"))  # type: ignore[arg-type]


def _wrap_key(shared: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(shared)
    return AESGCM(key)


def _load_p256(spki: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_der_public_key(spki)
    except ValueError:
        raise ProtocolError("the key API public key does not parse") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _P256.name:
        raise ProtocolError("the key API public key must be P-256")
    return key


@dataclass
class KeyServer:
    """Serves the data key to replicas that prove the same identity as this one."""

    tee: _TEE
    anchors: TrustAnchors
    data_key: Callable[[], bytes]
    seal_mode: Callable[[], str]
    clock: Callable[[], dt.datetime]

    def __post_init__(self) -> None:
        self._key = generate_key()
        cert = self_signed_user_certificate(self._key, "veil coordinator key API", now=self.clock())
        self._cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self._spki = spki_der(self._key.public_key())
        self._own = own_claims(self.tee, self.anchors, self.clock())

    def ssl_context(self) -> ssl.SSLContext:
        """The server's TLS context (ephemeral key; its evidence authenticates it)."""
        return server_ssl_context(self._cert_pem, private_key_pem(self._key))

    def grant(self, request: bytes) -> bytes:
        """Answer one request: verify the requester, then the data key sealed to its key."""
        try:
            doc = json.loads(request)
        except ValueError:
            raise ProtocolError("the key API request is not JSON") from None
        if not isinstance(doc, dict):
            raise ProtocolError("the key API request is not an object")
        requester_spki, nonce = _field(doc, "public_key"), _field(doc, "nonce")
        if len(nonce) != 32:
            raise ProtocolError("the key API nonce must be 32 bytes")
        now = self.clock()
        # (1)-(2): the requester's evidence binds its key and shows this replica's own identity.
        verify(
            _evidence(doc),
            peer_policy(self._own, self.seal_mode(), serving=True),
            trust_anchors=self.anchors,
            expected_report_data=key_api_report_data(b"requester", requester_spki),
            now=now,
        )
        requester_key = _load_p256(requester_spki)
        # (3): our evidence binds our TLS key, the nonce and the ephemeral ECDH key.
        ephemeral = ec.generate_private_key(_P256)
        ephemeral_spki = spki_der(ephemeral.public_key())
        evidence = self.tee.issue(
            key_api_report_data(b"server", self._spki, nonce, ephemeral_spki, requester_spki)
        )
        aead = _wrap_key(ephemeral.exchange(ec.ECDH(), requester_key))
        iv = os.urandom(12)
        sealed = iv + aead.encrypt(iv, self.data_key(), _LABEL + requester_spki)
        return json.dumps(
            {
                "tee": evidence.tee,
                "evidence": _b64(evidence.raw),
                "ephemeral": _b64(ephemeral_spki),
                "data_key": _b64(sealed),
            }
        ).encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            request = await asyncio.wait_for(_read_frame(reader), timeout=10)
            try:
                answer = await asyncio.to_thread(self.grant, request)
            except Error as exc:
                log.warning(
                    "key API request refused",
                    extra={"event": "keyapi.refused", "peer": str(peer), "reason": exc.message},
                )
                answer = json.dumps({"error": "refused"}).encode()
            else:
                log.info("data key shared with a peer", extra={"event": "keyapi.granted"})
            writer.write(struct.pack(">I", len(answer)) + answer)
            await writer.drain()
        except (OSError, TimeoutError, ProtocolError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def serve(self, sock: socket.socket) -> asyncio.Server:
        """Start serving on a listening socket."""
        return await asyncio.start_server(self._handle, sock=sock, ssl=self.ssl_context())


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    if size > _MAX_FRAME:
        raise ProtocolError("the key API message is too large")
    return await reader.readexactly(size)


def _recv_exact(conn: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise NetworkError("the key API peer closed the connection")
        data += chunk
    return data


def request_data_key(
    addr: str,
    *,
    tee: _TEE,
    anchors: TrustAnchors,
    seal_mode: str,
    now: dt.datetime,
    timeout: float = 5.0,
) -> bytes:
    """Obtain the data key from the peer at ``addr`` (HOST:PORT) after mutual attestation.

    Raises :class:`NetworkError` when the peer cannot be reached, :class:`VerificationError` when
    either side's evidence does not match the other's identity.
    """
    host, _, port = addr.rpartition(":")
    own = own_claims(tee, anchors, now)
    key = ec.generate_private_key(_P256)
    spki = spki_der(key.public_key())
    nonce = os.urandom(32)
    evidence = tee.issue(key_api_report_data(b"requester", spki))
    body = json.dumps(
        {
            "tee": evidence.tee,
            "evidence": _b64(evidence.raw),
            "public_key": _b64(spki),
            "nonce": _b64(nonce),
        }
    ).encode()
    context = client_ssl_context(None)  # authenticated by the evidence below, not by a CA
    try:
        with (
            socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout) as raw,
            context.wrap_socket(raw) as conn,
        ):
            peer_cert = conn.getpeercert(binary_form=True)
            conn.sendall(struct.pack(">I", len(body)) + body)
            (size,) = struct.unpack(">I", _recv_exact(conn, 4))
            if size > _MAX_FRAME:
                raise ProtocolError("the key API answer is too large")
            answer = json.loads(_recv_exact(conn, size))
    except (OSError, ValueError) as exc:
        raise NetworkError(f"key API peer {addr} unreachable ({type(exc).__name__})") from None
    if not isinstance(answer, dict) or "error" in answer or peer_cert is None:
        raise VerificationError(f"key API peer {addr} refused to share the data key")
    public = x509.load_der_x509_certificate(peer_cert).public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise VerificationError("the key API peer's TLS key is not ECDSA")
    ephemeral_spki = _field(answer, "ephemeral")
    # (4): the server's evidence binds the TLS key we talk to, our nonce and its ECDH key.
    verify(
        _evidence(answer),
        peer_policy(own, seal_mode, serving=False),
        trust_anchors=anchors,
        expected_report_data=key_api_report_data(
            b"server", spki_der(public), nonce, ephemeral_spki, spki
        ),
        now=now,
    )
    aead = _wrap_key(key.exchange(ec.ECDH(), _load_p256(ephemeral_spki)))
    sealed = _field(answer, "data_key")
    try:
        return aead.decrypt(sealed[:12], sealed[12:], _LABEL + spki)
    except InvalidTag:
        raise VerificationError(
            "the data key from the key API peer failed authentication"
        ) from None
