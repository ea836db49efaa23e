"""A minimal strict DER reader (X.690 section 10): definite, minimal lengths; single-byte tags."""

from __future__ import annotations

__all__ = ["BIT_STRING", "SEQUENCE", "DerError", "elements", "read_tlv", "signature_bits_unpadded"]

SEQUENCE = 0x30
BIT_STRING = 0x03


class DerError(ValueError):
    """The bytes are not the DER the caller expected."""


def read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """Read one element at ``offset``: (tag, contents, offset after it)."""
    if offset + 2 > len(data):
        raise DerError("element header is truncated")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise DerError("element length is invalid")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80 or data[offset] == 0:
            raise DerError("element length is not minimally encoded")
        offset += count
    end = offset + length
    if end > len(data):
        raise DerError("element is truncated")
    return tag, data[offset:end], end


def elements(data: bytes) -> list[tuple[int, bytes]]:
    """All elements that make up ``data`` exactly, as (tag, contents)."""
    items: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        tag, value, offset = read_tlv(data, offset)
        items.append((tag, value))
    return items


def signature_bits_unpadded(signed: bytes) -> bool:
    """Whether a SIGNED{...} structure (certificate, CRL) is one SEQUENCE whose signature BIT
    STRING declares zero unused bits: the only byte outside the signature that no signature or
    parse otherwise pins down."""
    try:
        (outer,) = elements(signed)
        if outer[0] != SEQUENCE:
            return False
        parts = elements(outer[1])
    except (DerError, ValueError):
        return False
    return len(parts) == 3 and parts[2][0] == BIT_STRING and parts[2][1][:1] == b"\x00"
