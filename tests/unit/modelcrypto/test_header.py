"""Parsing of the model ciphertext header."""

from __future__ import annotations

import pytest

from veil.errors import IntegrityError, ProtocolError
from veil.modelcrypto import Header, decrypt_bytes, encrypt_bytes, read_header

from .conftest import HEADER


def test_read_header_returns_salt_and_nonce_prefix(key: bytes, ad: bytes) -> None:
    """read_header splits a ciphertext's first 40 bytes into length, salt and nonce prefix."""
    ciphertext = encrypt_bytes(b"model", key=key, associated_data=ad)
    header = read_header(ciphertext)
    assert header.header_length == HEADER
    assert ciphertext[:HEADER] == bytes([HEADER]) + header.salt + header.nonce_prefix
    assert len(header.salt) == 32
    assert len(header.nonce_prefix) == 7


def test_header_round_trips_through_bytes() -> None:
    """A generated header reads back equal from its own bytes."""
    header = Header.generate()
    assert read_header(header.to_bytes()) == header


def test_short_header_is_a_protocol_error() -> None:
    """Fewer than 40 bytes is a malformed header."""
    with pytest.raises(ProtocolError, match="header is 40 bytes"):
        read_header(bytes([HEADER]) + bytes(10))


@pytest.mark.parametrize("length_byte", [0, 39, 41, 255])
def test_wrong_header_length_byte_is_a_protocol_error(length_byte: int) -> None:
    """A header whose first byte is not 40 is malformed."""
    with pytest.raises(ProtocolError, match="header length must be 40"):
        read_header(bytes([length_byte]) + bytes(HEADER - 1))


def test_header_fields_of_the_wrong_size_cannot_exist() -> None:
    """A Header with a short salt or nonce prefix cannot be constructed."""
    with pytest.raises(ProtocolError):
        Header(salt=bytes(31), nonce_prefix=bytes(7))
    with pytest.raises(ProtocolError):
        Header(salt=bytes(32), nonce_prefix=bytes(8))


def test_decrypt_reports_a_malformed_header_as_tampering(key: bytes, ad: bytes) -> None:
    """decrypt_bytes turns a malformed header into IntegrityError, like any other tampering."""
    ciphertext = bytearray(encrypt_bytes(b"model", key=key, associated_data=ad))
    ciphertext[0] = 41
    with pytest.raises(IntegrityError, match="header is malformed"):
        decrypt_bytes(ciphertext, key=key, associated_data=ad)
