"""Interoperability with Google Tink (tink-py): each side decrypts what the other encrypts."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest

from veil.errors import IntegrityError
from veil.modelcrypto import SEGMENT_SIZE, decrypt_bytes, encrypt_bytes, load_key

try:
    import tink
    from tink import JsonKeysetWriter, cleartext_keyset_handle, streaming_aead
except ImportError:  # tink is an optional test dependency
    tink = None

pytestmark = pytest.mark.skipif(
    tink is None, reason="tink is not installed; interop with Google Tink is not checked"
)

AD = b"veil-model:v1:interop"
FIRST = SEGMENT_SIZE - 40 - 16
SIZES = [0, 1, FIRST, FIRST + 1, FIRST + SEGMENT_SIZE - 16, 2 * SEGMENT_SIZE + 777]


class _KeepOnClose(io.BytesIO):
    """Tink closes the destination stream; keep its bytes."""

    value = b""

    def close(self) -> None:
        self.value = self.getvalue()
        super().close()


@pytest.fixture(scope="module")
def tink_keyset() -> tuple[Any, bytes]:
    """A Tink AES256_GCM_HKDF_1MB keyset handle and its key loaded through load_key."""
    streaming_aead.register()
    template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    handle = tink.new_keyset_handle(template)
    text = io.StringIO()
    cleartext_keyset_handle.write(JsonKeysetWriter(text), handle)
    return handle.primitive(streaming_aead.StreamingAead), load_key(text.getvalue().encode())


@pytest.mark.parametrize("size", SIZES)
def test_tink_ciphertext_decrypts_with_veil(tink_keyset: tuple[Any, bytes], size: int) -> None:
    """What Tink encrypts, decrypt_bytes opens with the key from Tink's JSON keyset."""
    primitive, key = tink_keyset
    plaintext = os.urandom(size)
    sink = _KeepOnClose()
    with primitive.new_encrypting_stream(sink, AD) as stream:
        stream.write(plaintext)
    assert decrypt_bytes(sink.value, key=key, associated_data=AD) == plaintext


@pytest.mark.parametrize("size", SIZES)
def test_veil_ciphertext_decrypts_with_tink(tink_keyset: tuple[Any, bytes], size: int) -> None:
    """What encrypt_bytes makes, Tink's decrypting stream opens."""
    primitive, key = tink_keyset
    plaintext = os.urandom(size)
    ciphertext = encrypt_bytes(plaintext, key=key, associated_data=AD)
    with primitive.new_decrypting_stream(io.BytesIO(ciphertext), AD) as stream:
        assert stream.read() == plaintext


def test_tink_ciphertext_under_another_name_is_refused(tink_keyset: tuple[Any, bytes]) -> None:
    """A Tink ciphertext made for other associated data fails authentication in veil."""
    primitive, key = tink_keyset
    sink = _KeepOnClose()
    with primitive.new_encrypting_stream(sink, b"veil-model:v1:other") as stream:
        stream.write(b"weights")
    with pytest.raises(IntegrityError):
        decrypt_bytes(sink.value, key=key, associated_data=AD)
