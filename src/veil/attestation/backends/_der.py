"""A tiny, strict DER reader for the few certificate extensions the TEE verifiers need.

``cryptography`` hands vendor extensions (AMD VCEK TCB/hwID, the TCG DICE ``TcbInfo`` on NVIDIA
device certificates) over as raw ``extnValue`` bytes. This module reads exactly the DER the
verifiers need (ITU-T X.690 §8, definite lengths only) and raises :class:`DerError` on anything
else; callers turn that into an ``EvidenceError`` with their own step name.
"""

from __future__ import annotations

from dataclasses import dataclass

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_SEQUENCE = 0x30


class DerError(ValueError):
    """The bytes are not the DER structure the caller expected."""


@dataclass(frozen=True)
class Tlv:
    """One DER element: its identifier octet, content bytes, and the offset just after it."""

    tag: int
    value: bytes
    end: int


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Read one element at ``offset`` (single-byte tags, definite lengths up to 4 bytes)."""
    if offset + 2 > len(data):
        raise DerError("truncated DER element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte DER tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DerError("invalid DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("non-minimal DER length")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("DER element runs past the end of its container")
    return Tlv(tag=tag, value=data[pos:end], end=end)


def read_single(data: bytes, tag: int) -> bytes:
    """The content of ``data`` when it is exactly one element with ``tag``."""
    tlv = read_tlv(data)
    if tlv.tag != tag or tlv.end != len(data):
        raise DerError(f"expected exactly one DER element with tag 0x{tag:02x}")
    return tlv.value


def children(content: bytes) -> list[Tlv]:
    """The elements inside a constructed value's content, in order."""
    out: list[Tlv] = []
    offset = 0
    while offset < len(content):
        tlv = read_tlv(content, offset)
        out.append(tlv)
        offset = tlv.end
    return out


def read_uint(data: bytes) -> int:
    """A DER INTEGER that must be non-negative (e.g. an AMD SPL extension)."""
    content = read_single(data, TAG_INTEGER)
    if not content or content[0] & 0x80:
        raise DerError("expected a non-negative DER INTEGER")
    if len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
        raise DerError("non-minimal DER INTEGER")
    return int.from_bytes(content, "big")
