"""The simulated TEE: a faithful, explicit stand-in for hardware attestation.

Nothing here is secure against the machine's owner: the simulated platform keeps its root and
attestation keys in files. What is faithful is the *protocol*: evidence is signed by an attestation
key whose certificate chains to a pinned simulated root, it carries a measurement, a signer, product
and security version, a debug bit and 64 bytes of report data, and verification checks each of them
exactly as the hardware backends do. Verifiers accept it only when their policy says
``TEE: simulated`` (see :func:`veil.attestation.check_claims`).

Evidence layout (JSON, UTF-8)::

    {"format": "veil-simulated-evidence/v1",
     "body": base64(JSON claims), "signature": base64(ECDSA P-256 SHA-256 over body),
     "certificates": [PEM of the attestation key certificate]}
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from veil.attestation._model import MAX_EVIDENCE_SIZE, REPORT_DATA_SIZE, Claims
from veil.errors import EvidenceError

FORMAT = "veil-simulated-evidence/v1"


def _fail(step: str, message: str) -> EvidenceError:
    return EvidenceError(f"simulated evidence refused at step '{step}': {message}", step=step)


def _b64(value: object, step: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(step, f"{what} must be a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(step, f"{what} is not valid base64") from None
    if base64.b64encode(decoded).decode() != value:
        raise _fail(step, f"{what} is not canonical base64")
    return decoded


def _hex(doc: dict[str, object], key: str, size: int) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise _fail("claims", f"claim {key} is missing")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise _fail("claims", f"claim {key} is not hex") from None
    if len(raw) != size:
        raise _fail("claims", f"claim {key} must be {size} bytes")
    return raw


def _uint(doc: dict[str, object], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise _fail("claims", f"claim {key} must be an unsigned integer")
    return value


def _parse_envelope(raw: bytes) -> tuple[bytes, bytes, str]:
    """Step 1: (body, signature, attestation key certificate PEM) of a canonical envelope."""
    if len(raw) > MAX_EVIDENCE_SIZE:
        raise _fail("parse", f"evidence is larger than {MAX_EVIDENCE_SIZE} bytes")
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _fail("parse", "evidence is not a JSON document") from None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise _fail("parse", f"evidence is not in the {FORMAT} format")
    if json.dumps(envelope).encode() != raw:
        raise _fail("parse", "evidence is not in its canonical encoding (modified envelope)")
    body = _b64(envelope.get("body"), "parse", "body")
    signature = _b64(envelope.get("signature"), "parse", "signature")
    certs = envelope.get("certificates")
    if not isinstance(certs, list) or len(certs) != 1 or not isinstance(certs[0], str):
        raise _fail("parse", "exactly one attestation key certificate is required")
    return body, signature, certs[0]


def verify_simulated(raw: bytes, *, trust_anchor_der: bytes, now: dt.datetime) -> Claims:
    """Verify simulated evidence against the pinned simulated root; return its claims or raise."""
    # 1. Parse the envelope, with a size limit before any work.
    body, signature, ak_pem = _parse_envelope(raw)
    # 2. Chain: the attestation key certificate must be signed by the pinned simulated root and
    #    be valid now.
    try:
        ak_cert = x509.load_pem_x509_certificate(ak_pem.encode("ascii"))
        root = x509.load_der_x509_certificate(trust_anchor_der)
    except ValueError:
        raise _fail("chain", "a certificate does not parse") from None
    root_key = root.public_key()
    if not isinstance(root_key, ec.EllipticCurvePublicKey):
        raise _fail("chain", "the simulated root must be an ECDSA certificate")
    try:
        ak_cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise _fail(
            "chain", "the attestation key is not certified by the pinned simulated root"
        ) from None
    if not ak_cert.not_valid_before_utc <= now <= ak_cert.not_valid_after_utc:
        raise _fail("chain", "the attestation key certificate is not valid at this time")
    # 3. Signature over the body by the attestation key.
    ak_key = ak_cert.public_key()
    if not isinstance(ak_key, ec.EllipticCurvePublicKey):
        raise _fail("signature", "the attestation key must be ECDSA")
    try:
        ak_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise _fail("signature", "the evidence signature is invalid (modified evidence)") from None
    # 4. Claims.
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _fail("claims", "signed body is not JSON") from None
    if not isinstance(doc, dict):
        raise _fail("claims", "signed body must be a JSON object")
    debug = doc.get("debug")
    if not isinstance(debug, bool):
        raise _fail("claims", "claim debug must be true or false")
    unique_id = _hex(doc, "unique_id", 32)
    signer_id = _hex(doc, "signer_id", 32)
    product_id = _uint(doc, "product_id")
    security_version = _uint(doc, "security_version")
    report_data = _hex(doc, "report_data", REPORT_DATA_SIZE)
    return Claims(
        tee="simulated",
        unique_id=unique_id,
        signer_id=signer_id,
        product_id=product_id,
        security_version=security_version,
        debug=debug,
        report_data=report_data,
        fields={
            "unique_id": unique_id.hex(),
            "signer_id": signer_id.hex(),
            "product_id": product_id,
            "security_version": security_version,
            "debug": debug,
            "report_data": report_data.hex(),
        },
    )
