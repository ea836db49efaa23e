"""The Intel SGX extension of a PCK certificate, read with a small strict DER reader.

Intel, *SGX PCK Certificate and CRL Profile Specification*, section "Intel SGX PCK Certificate
Extensions": OID 1.2.840.113741.1.13.1 holds a SEQUENCE of (OID, value) pairs: .1 PPID, .2 TCB
(.2.1-.2.16 component SVNs, .2.17 PCESVN, .2.18 CPUSVN), .3 PCE-ID, .4 FMSPC, .5 SGX type and, for
platform CA certificates, .6 platform instance ID and .7 configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from veil.attestation.backends.dcap._der import SEQUENCE, DerError, elements
from veil.errors import EvidenceError

__all__ = ["SGX_EXTENSION_OID", "PckExtension", "parse_pck_extension"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"

_OID = 0x06
_INTEGER = 0x02
_OCTET_STRING = 0x04
_ENUMERATED = 0x0A
_TCB_COMPONENTS = 16


@dataclass(frozen=True)
class PckExtension:
    """The values of the SGX extension that verification uses."""

    ppid: bytes
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int


def _fail(message: str) -> EvidenceError:
    return EvidenceError(f"PCK certificate SGX extension is malformed: {message}", step="chain")


def _elements(data: bytes) -> list[tuple[int, bytes]]:
    try:
        return elements(data)
    except DerError as error:
        raise _fail(str(error)) from None


def _oid(value: bytes) -> str:
    if not value or value[-1] & 0x80:
        raise _fail("object identifier is truncated")
    arcs: list[int] = []
    current = 0
    for index, byte in enumerate(value):
        if current == 0 and byte == 0x80 and (index == 0 or not value[index - 1] & 0x80):
            raise _fail("object identifier is not minimally encoded")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _pairs(value: bytes, prefix: str) -> dict[str, tuple[int, bytes]]:
    """Decode a SEQUENCE OF SEQUENCE { OID, value } into {last arc: (tag, contents)}."""
    result: dict[str, tuple[int, bytes]] = {}
    for tag, entry in _elements(value):
        if tag != SEQUENCE:
            raise _fail("expected a SEQUENCE of (OID, value) pairs")
        parts = _elements(entry)
        if len(parts) != 2 or parts[0][0] != _OID:
            raise _fail("expected an (OID, value) pair")
        oid = _oid(parts[0][1])
        if not oid.startswith(prefix + "."):
            raise _fail(f"unexpected OID {oid} under {prefix}")
        arc = oid[len(prefix) + 1 :]
        if arc in result:
            raise _fail(f"OID {oid} appears twice")
        result[arc] = parts[1]
    return result


def _integer(item: tuple[int, bytes], what: str, maximum: int) -> int:
    tag, value = item
    if tag not in (_INTEGER, _ENUMERATED) or not value:
        raise _fail(f"{what} is not an INTEGER")
    if len(value) > 1 and (
        (value[0] == 0 and not value[1] & 0x80) or (value[0] == 0xFF and value[1] & 0x80)
    ):
        raise _fail(f"{what} is not minimally encoded")
    number = int.from_bytes(value, "big", signed=True)
    if not 0 <= number <= maximum:
        raise _fail(f"{what} is out of range")
    return number


def _octets(item: tuple[int, bytes], what: str, size: int | None) -> bytes:
    tag, value = item
    if tag != _OCTET_STRING or (size is not None and len(value) != size):
        raise _fail(f"{what} must be an OCTET STRING of {size} bytes")
    return value


def _required(pairs: dict[str, tuple[int, bytes]], arc: str) -> tuple[int, bytes]:
    if arc not in pairs:
        raise _fail(f"{SGX_EXTENSION_OID}.{arc} is missing")
    return pairs[arc]


def parse_pck_extension(certificate: x509.Certificate) -> PckExtension:
    """Read the SGX extension of a PCK leaf certificate or raise ``EvidenceError(step="chain")``."""
    try:
        extension = certificate.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(SGX_EXTENSION_OID)
        )
    except x509.ExtensionNotFound:
        raise _fail("the certificate has no SGX extension") from None
    except ValueError:
        raise _fail("the certificate extensions cannot be decoded") from None
    if not isinstance(extension.value, x509.UnrecognizedExtension):
        raise _fail("unexpected extension type")
    elements = _elements(extension.value.value)
    if len(elements) != 1 or elements[0][0] != SEQUENCE:
        raise _fail("the extension is not one SEQUENCE")
    top = _pairs(elements[0][1], SGX_EXTENSION_OID)
    tcb_tag, tcb_value = _required(top, "2")
    if tcb_tag != SEQUENCE:
        raise _fail("TCB is not a SEQUENCE")
    tcb = _pairs(tcb_value, SGX_EXTENSION_OID + ".2")
    components = tuple(
        _integer(_required(tcb, str(index)), f"TCB component {index}", 255)
        for index in range(1, _TCB_COMPONENTS + 1)
    )
    return PckExtension(
        ppid=_octets(_required(top, "1"), "PPID", 16),
        tcb_components=components,
        pce_svn=_integer(_required(tcb, "17"), "PCESVN", 0xFFFF),
        cpu_svn=_octets(_required(tcb, "18"), "CPUSVN", 16),
        pce_id=_octets(_required(top, "3"), "PCE-ID", 2),
        fmspc=_octets(_required(top, "4"), "FMSPC", 6),
        sgx_type=_integer(_required(top, "5"), "SGX type", 255),
    )
