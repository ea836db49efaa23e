"""QuoteCollateralV3 JSON from Intel PCS v4 responses, without re-serialising any signed byte.

The TCB info and QE identity bodies are ``{"tcbInfo": {…}, "signature": "<hex>"}`` and
``{"enclaveIdentity": {…}, "signature": "<hex>"}``; the signature covers the exact bytes of the
inner object as served (Intel PCS API v4 spec), so the member is cut out of the body by its span.
"""

from __future__ import annotations

import datetime as dt
import json

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from veil.errors import ProtocolError

__all__ = ["assemble_quote_collateral", "collateral_next_update", "crl_der", "signed_member"]

_WS = " \t\r\n"
_decoder = json.JSONDecoder()


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _members(text: str) -> dict[str, str]:
    """Top-level members of a JSON object as their exact source text (no re-serialising)."""
    out: dict[str, str] = {}
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return out
    while True:
        if text[pos : pos + 1] != '"':
            raise ValueError("expected a member name")
        name, pos = _decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise ValueError("expected ':'")
        start = _skip(text, pos + 1)
        _, end = _decoder.raw_decode(text, start)
        if name in out:
            raise ValueError(f"duplicate member {name!r}")
        out[name] = text[start:end]
        pos = _skip(text, end)
        if text[pos : pos + 1] == ",":
            pos = _skip(text, pos + 1)
            continue
        if text[pos : pos + 1] == "}" and _skip(text, pos + 1) == len(text):
            return out
        raise ValueError("expected ',' or the end of the object")


def signed_member(body: bytes, member: str, what: str) -> tuple[str, str]:
    """(exact text of ``member``, hex signature) from a PCS signed-JSON body."""
    try:
        members = _members(body.decode("utf-8"))
        inner = members[member]
        signature = json.loads(members["signature"])
        json.loads(inner)
    except (UnicodeDecodeError, ValueError, KeyError):
        raise ProtocolError(
            f"the {what} response is not {{{member!r}: …, 'signature': …}} JSON"
        ) from None
    if not isinstance(signature, str) or not inner.startswith("{"):
        raise ProtocolError(f"the {what} response has a malformed {member} or signature")
    try:
        bytes.fromhex(signature)
    except ValueError:
        raise ProtocolError(f"the {what} signature is not hex") from None
    return inner, signature


def crl_der(body: bytes, what: str) -> bytes:
    """A CRL served as DER, PEM or hex (PCCS), returned as DER."""
    data = body.strip()
    try:
        if data.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data).public_bytes(Encoding.DER)
        if not data.startswith(b"\x30"):
            data = bytes.fromhex(data.decode("ascii"))
        x509.load_der_x509_crl(data)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"the {what} is not a CRL (DER, PEM or hex)") from None
    return data


def assemble_quote_collateral(
    *,
    pck_crl_issuer_chain: str,
    root_ca_crl: bytes,
    pck_crl: bytes,
    tcb_info_issuer_chain: str,
    tcb_info_body: bytes,
    qe_identity_issuer_chain: str,
    qe_identity_body: bytes,
) -> bytes:
    """QuoteCollateralV3 JSON (dcap-qvl's format) from PCS v4 responses (CRLs as DER)."""
    tcb_info, tcb_info_signature = signed_member(tcb_info_body, "tcbInfo", "TCB info")
    qe_identity, qe_identity_signature = signed_member(
        qe_identity_body, "enclaveIdentity", "QE identity"
    )
    document = {
        "pck_crl_issuer_chain": pck_crl_issuer_chain,
        "root_ca_crl": root_ca_crl.hex(),
        "pck_crl": pck_crl.hex(),
        "tcb_info_issuer_chain": tcb_info_issuer_chain,
        "tcb_info": tcb_info,
        "tcb_info_signature": tcb_info_signature,
        "qe_identity_issuer_chain": qe_identity_issuer_chain,
        "qe_identity": qe_identity,
        "qe_identity_signature": qe_identity_signature,
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _timestamp(value: object, what: str) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"{what} has no nextUpdate")
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def collateral_next_update(collateral: bytes) -> dt.datetime:
    """The earliest nextUpdate of the TCB info, QE identity and both CRLs (``ValueError`` if bad)."""
    try:
        doc = json.loads(collateral)
        times = [
            _timestamp(json.loads(doc["tcb_info"])["nextUpdate"], "TCB info"),
            _timestamp(json.loads(doc["qe_identity"])["nextUpdate"], "QE identity"),
        ]
        crl_times = [
            x509.load_der_x509_crl(bytes.fromhex(doc[key])).next_update_utc
            for key in ("pck_crl", "root_ca_crl")
        ]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not QuoteCollateralV3 JSON with nextUpdate times: {exc}") from None
    for crl_time in crl_times:
        if crl_time is None:
            raise ValueError("a CRL of the collateral has no nextUpdate")
        times.append(crl_time)
    return min(times)
