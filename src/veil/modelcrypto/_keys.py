"""Model keys: generation, key-file loading (raw, hex, base64, Tink keyset), associated data.

Key files are parsed by hand rather than with pydantic or protobuf classes because their error
messages echo input values, and these inputs are key material. Every error raised here says what
is wrong with the file's shape, never what is in it; errors are raised outside ``except`` blocks
so no exception holding key bytes is chained to them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from veil.errors import ConfigurationError
from veil.modelcrypto._format import KEY_SIZE, SEGMENT_SIZE

__all__ = ["generate_key", "load_key", "model_associated_data"]

MODEL_AD_PREFIX = b"veil-model:v1:"
TINK_TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"
_HASH_SHA256 = 3  # google.crypto.tink.HashType.SHA256
_VARINT, _LENGTH_DELIMITED = 0, 2

_UNRECOGNISED = (
    "the model key file is not a raw 32-byte key, 64 hex digits, base64 of 32 bytes, or a "
    "cleartext Tink JSON keyset; generate one with veil.modelcrypto.generate_key."
)


def generate_key() -> bytes:
    """A fresh random 32-byte model key."""
    return os.urandom(KEY_SIZE)


def model_associated_data(model_name: str) -> bytes:
    """The associated data that binds a model ciphertext to its name (see ADR 0003)."""
    if not model_name:
        raise ConfigurationError("a model name must not be empty.")
    try:
        encoded = model_name.encode("utf-8")
    except UnicodeEncodeError:
        encoded = None
    if encoded is None:
        raise ConfigurationError("a model name must be valid Unicode text.")
    return MODEL_AD_PREFIX + encoded


def load_key(data: bytes) -> bytes:
    """Return the raw 32-byte key held in a key file's contents.

    Accepted: exactly 32 raw bytes; 64 hex digits; base64 of 32 bytes; or a cleartext Tink JSON
    keyset holding one enabled ``AesGcmHkdfStreamingKey`` with 1 MiB segments, HKDF-SHA256 and
    a 32-byte derived key. A file of exactly 32 bytes is always taken as a raw key. Anything
    else raises ConfigurationError, whose message never echoes the file.
    """
    if len(data) == KEY_SIZE:
        return bytes(data)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    key: bytes | None = None
    if text.startswith("{"):
        key = _from_tink_keyset(text)
    elif text:
        key = _from_hex(text) or _from_base64(text)
    if key is None:
        raise ConfigurationError(_UNRECOGNISED)
    return key


def _from_hex(text: str) -> bytes | None:
    if len(text) != 2 * KEY_SIZE:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _from_base64(text: str) -> bytes | None:
    for altchars in (b"+/", b"-_"):
        try:
            key = base64.b64decode(text, altchars=altchars, validate=True)
        except binascii.Error:
            continue
        if len(key) == KEY_SIZE:
            return key
    return None


def _from_tink_keyset(text: str) -> bytes:
    """The key of a cleartext Tink JSON keyset, checked against AES256_GCM_HKDF_1MB."""
    try:
        keyset: Any = json.loads(text)
    except ValueError:
        keyset = None
    if not isinstance(keyset, dict):
        raise ConfigurationError("the model key file starts like JSON but is not a JSON object.")
    if "encryptedKeyset" in keyset:
        raise ConfigurationError(
            "the model key file is an encrypted Tink keyset; export it as a cleartext keyset."
        )
    keys = keyset.get("key")
    if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
        raise ConfigurationError("the Tink keyset must hold exactly one key.")
    entry: dict[str, Any] = keys[0]
    key_data = entry.get("keyData")
    if not isinstance(key_data, dict) or key_data.get("typeUrl") != TINK_TYPE_URL:
        raise ConfigurationError(f"the Tink keyset's key must be of type {TINK_TYPE_URL}.")
    if entry.get("status") != "ENABLED":
        raise ConfigurationError("the Tink keyset's key is not ENABLED.")
    if "primaryKeyId" in keyset and keyset["primaryKeyId"] != entry.get("keyId"):
        raise ConfigurationError("the Tink keyset's primaryKeyId does not name its key.")
    value = key_data.get("value")
    serialized = _from_base64_any(value) if isinstance(value, str) else None
    if serialized is None:
        raise ConfigurationError("the Tink keyset's keyData.value is not base64.")
    return _parse_streaming_key(serialized)


def _from_base64_any(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


def _parse_streaming_key(serialized: bytes) -> bytes:
    """Check an AesGcmHkdfStreamingKey proto (version=1, params=2, key_value=3); return the key.

    AesGcmHkdfStreamingParams: ciphertext_segment_size=1, derived_key_size=2, hkdf_hash_type=3.
    """
    key_fields = _proto_fields(serialized)
    params_bytes, key_value = key_fields.get(2), key_fields.get(3)
    if key_fields.get(1, 0) != 0 or not isinstance(params_bytes, bytes):
        raise ConfigurationError("the Tink key is not a version 0 AesGcmHkdfStreamingKey.")
    params = _proto_fields(params_bytes)
    if (
        params.get(1) != SEGMENT_SIZE
        or params.get(2) != KEY_SIZE
        or params.get(3) != _HASH_SHA256
        or not set(params) <= {1, 2, 3}
    ):
        raise ConfigurationError(
            "the Tink key's parameters are not AES256_GCM_HKDF_1MB "
            "(1 MiB segments, 32-byte derived key, HKDF-SHA256)."
        )
    if not isinstance(key_value, bytes) or len(key_value) != KEY_SIZE:
        raise ConfigurationError(f"the Tink key's key_value must be {KEY_SIZE} bytes.")
    return key_value


def _proto_fields(data: bytes) -> dict[int, int | bytes]:
    """Decode one flat protobuf message of varint and length-delimited fields (no repeats)."""
    fields: dict[int, int | bytes] = {}
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == _VARINT:
            value, position = _varint(data, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ConfigurationError("the Tink key is not a well-formed protobuf message.")
            value, position = data[position : position + length], position + length
        else:
            raise ConfigurationError("the Tink key has a field of an unexpected wire type.")
        if number in fields or number not in {1, 2, 3}:
            raise ConfigurationError("the Tink key has unexpected or repeated fields.")
        fields[number] = value
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 64, 7):
        if position >= len(data):
            break
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
    raise ConfigurationError("the Tink key is not a well-formed protobuf message.")
