"""Regenerate tink_vectors.json: ciphertexts made by Google Tink (tink-py), opened by our tests.

Run with tink installed: ``.venv/bin/python tests/unit/modelcrypto/vectors/make_vectors.py``.
The vectors let the known-answer test run without tink; the interop test covers larger sizes.
"""

from __future__ import annotations

import io
import json
from importlib.metadata import version
from pathlib import Path

import tink
from tink import JsonKeysetWriter, cleartext_keyset_handle, streaming_aead

HERE = Path(__file__).parent
PLAINTEXTS = [b"", b"v", b"veil known-answer vector: a tiny model file" * 3]
ASSOCIATED_DATA = b"veil-model:v1:known-answer"


class _KeepOnClose(io.BytesIO):
    """Tink closes the destination stream; keep its bytes."""

    value = b""

    def close(self) -> None:
        self.value = self.getvalue()
        super().close()


def main() -> None:
    """Write a fresh keyset and one Tink ciphertext per plaintext to tink_vectors.json."""
    streaming_aead.register()
    template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    handle = tink.new_keyset_handle(template)
    keyset = io.StringIO()
    cleartext_keyset_handle.write(JsonKeysetWriter(keyset), handle)
    primitive = handle.primitive(streaming_aead.StreamingAead)
    vectors = []
    for plaintext in PLAINTEXTS:
        sink = _KeepOnClose()
        with primitive.new_encrypting_stream(sink, ASSOCIATED_DATA) as stream:
            stream.write(plaintext)
        vectors.append({"plaintext": plaintext.hex(), "ciphertext": sink.value.hex()})
    document = {
        "comment": "Made by make_vectors.py with tink-py; test-only key, not secret.",
        "tink_version": version("tink"),
        "keyset": json.loads(keyset.getvalue()),
        "associated_data": ASSOCIATED_DATA.hex(),
        "vectors": vectors,
    }
    (HERE / "tink_vectors.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
