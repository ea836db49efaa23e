"""Known-answer vectors made by Google Tink decrypt with veil.modelcrypto (no tink needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from veil.modelcrypto import decrypt_bytes, load_key

DOCUMENT: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "tink_vectors.json").read_text()
)


@pytest.mark.parametrize(
    "vector", DOCUMENT["vectors"], ids=lambda v: f"{len(v['plaintext']) // 2}B"
)
def test_tink_ciphertexts_decrypt(vector: dict[str, str]) -> None:
    """A ciphertext that tink-py made with a committed keyset decrypts to its plaintext."""
    key = load_key(json.dumps(DOCUMENT["keyset"]).encode())
    plaintext = decrypt_bytes(
        bytes.fromhex(vector["ciphertext"]),
        key=key,
        associated_data=bytes.fromhex(DOCUMENT["associated_data"]),
    )
    assert plaintext == bytes.fromhex(vector["plaintext"])
