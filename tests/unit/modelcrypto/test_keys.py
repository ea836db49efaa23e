"""Loading model keys from key files, and the associated data that names a model."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from veil.errors import ConfigurationError
from veil.modelcrypto import KEY_SIZE, generate_key, load_key, model_associated_data

TYPE_URL = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _streaming_key(
    key: bytes, *, segment: int = 1 << 20, derived: int = 32, hash_type: int = 3
) -> bytes:
    """A serialized AesGcmHkdfStreamingKey proto, as Tink writes it."""
    params = _field(1, segment) + _field(2, derived) + _field(3, hash_type)
    return _field(2, params) + _field(3, key)


def _keyset(serialized: bytes, **overrides: Any) -> bytes:
    """A cleartext Tink JSON keyset holding one key; ``overrides`` replace key entry fields."""
    entry: dict[str, Any] = {
        "keyData": {
            "typeUrl": TYPE_URL,
            "value": base64.b64encode(serialized).decode(),
            "keyMaterialType": "SYMMETRIC",
        },
        "status": "ENABLED",
        "keyId": 42,
        "outputPrefixType": "RAW",
    }
    entry.update(overrides)
    return json.dumps({"primaryKeyId": 42, "key": [entry]}).encode()


def test_generated_keys_are_random_32_bytes() -> None:
    """generate_key returns 32 fresh random bytes."""
    assert len(generate_key()) == KEY_SIZE
    assert generate_key() != generate_key()


def test_raw_key_file_loads_as_is() -> None:
    """A 32-byte file is the raw key."""
    key = generate_key()
    assert load_key(key) == key


@pytest.mark.parametrize(
    "encode",
    [
        lambda k: k.hex().encode(),
        lambda k: k.hex().upper().encode() + b"\n",
        lambda k: base64.b64encode(k) + b"\n",
        base64.urlsafe_b64encode,
    ],
    ids=["hex", "hex-upper-newline", "base64", "base64url"],
)
def test_text_key_files_load(encode: Any) -> None:
    """Hex and base64 text of 32 bytes, with surrounding whitespace, load as the key."""
    key = generate_key()
    assert load_key(encode(key)) == key


def test_tink_json_keyset_loads() -> None:
    """A cleartext Tink keyset with one AES256_GCM_HKDF_1MB key yields its key value."""
    key = generate_key()
    assert load_key(_keyset(_streaming_key(key))) == key


@pytest.mark.parametrize(
    ("keyset", "message"),
    [
        (_keyset(_streaming_key(bytes(32), segment=4096)), "AES256_GCM_HKDF_1MB"),
        (_keyset(_streaming_key(bytes(32), derived=16)), "AES256_GCM_HKDF_1MB"),
        (_keyset(_streaming_key(bytes(32), hash_type=4)), "AES256_GCM_HKDF_1MB"),
        (_keyset(_streaming_key(bytes(16))), "key_value must be 32 bytes"),
        (_keyset(_streaming_key(bytes(32)) + b"\xff"), "well-formed protobuf"),
        (_keyset(_streaming_key(bytes(32)), status="DISABLED"), "not ENABLED"),
        (_keyset(_streaming_key(bytes(32)), keyId=7), "primaryKeyId"),
        (_keyset(b"", keyData={"typeUrl": "type.googleapis.com/x", "value": ""}), "of type"),
        (b'{"key": []}', "exactly one key"),
        (b'{"encryptedKeyset": "AAAA"}', "encrypted Tink keyset"),
        (b"{not json", "not a JSON object"),
    ],
    ids=[
        "segment-size",
        "derived-size",
        "hash",
        "short-key",
        "bad-proto",
        "disabled",
        "primary-mismatch",
        "type-url",
        "no-keys",
        "encrypted",
        "bad-json",
    ],
)
def test_unsuitable_tink_keysets_are_refused(keyset: bytes, message: str) -> None:
    """A Tink keyset that is not exactly one AES256_GCM_HKDF_1MB key raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match=message):
        load_key(keyset)


@pytest.mark.parametrize(
    "data",
    [b"", bytes(31), bytes(33), b"z" * 64, b"\xff\xfe" * 30, base64.b64encode(bytes(20))],
    ids=["empty", "31-bytes", "33-bytes", "not-hex", "binary", "base64-of-20"],
)
def test_garbage_key_files_are_refused(data: bytes) -> None:
    """Anything that is not a recognised key file raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="not a raw 32-byte key"):
        load_key(data)


def test_key_file_errors_never_echo_the_file() -> None:
    """Errors about a key file do not contain its contents or the key inside it."""
    key = generate_key()
    for data in (key.hex().encode() + b"!", _keyset(_streaming_key(key, segment=4096))):
        with pytest.raises(ConfigurationError) as caught:
            load_key(data)
        text = str(caught.value)
        assert key.hex() not in text
        assert base64.b64encode(key).decode() not in text
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None


def test_model_associated_data_is_prefixed_utf8_name() -> None:
    """The associated data is b"veil-model:v1:" followed by the UTF-8 model name."""
    assert model_associated_data("resnet50") == b"veil-model:v1:resnet50"
    assert model_associated_data("modèle") == "veil-model:v1:modèle".encode()


@pytest.mark.parametrize("name", ["", "\udc80"], ids=["empty", "lone-surrogate"])
def test_unusable_model_names_are_refused(name: str) -> None:
    """An empty or unencodable model name raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        model_associated_data(name)
