"""Encrypted model files: Tink-compatible streaming AEAD (``AES256_GCM_HKDF_1MB``).

A model is encrypted once by its owner and decrypted only inside the enclave, straight into
memory. The format is Google Tink's AesGcmHkdfStreaming with 1 MiB segments, so files made here
open with Tink and vice versa; see ``docs/adr/0003-model-file-format.md``.

    key = generate_key()
    ad = model_associated_data("resnet50")
    with open("model.onnx", "rb") as src, open("model.onnx.veil", "wb") as dst:
        encrypt_stream(src, dst, key=key, associated_data=ad)
    with open("model.onnx.veil", "rb") as src:
        plaintext = decrypt_stream(src, key=key, associated_data=ad)   # a bytearray in memory

Decryption raises :class:`veil.errors.IntegrityError` for a wrong key, a wrong model name, and
any modification, truncation, extension or reordering of the file.
"""

from veil.modelcrypto._decrypt import decrypt_bytes, decrypt_stream, plaintext_size
from veil.modelcrypto._encrypt import encrypt_bytes, encrypt_stream
from veil.modelcrypto._format import KEY_SIZE, SEGMENT_SIZE, Header, read_header
from veil.modelcrypto._keys import generate_key, load_key, model_associated_data

__all__ = [
    "KEY_SIZE",
    "SEGMENT_SIZE",
    "Header",
    "decrypt_bytes",
    "decrypt_stream",
    "encrypt_bytes",
    "encrypt_stream",
    "generate_key",
    "load_key",
    "model_associated_data",
    "plaintext_size",
    "read_header",
]
