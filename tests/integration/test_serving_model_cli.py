"""``veil model encrypt | decrypt | inspect``: Tink interop both ways, fsspec URLs, failures."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import fsspec
import pytest
from click.testing import CliRunner

from tests.integration._deploy import veil
from veil.cli import cli
from veil.modelcrypto import model_associated_data

tink = pytest.importorskip("tink")
from tink import JsonKeysetWriter, cleartext_keyset_handle, streaming_aead  # noqa: E402

pytestmark = pytest.mark.integration

PLAINTEXT = os.urandom(3 * 1024 * 1024 + 123)  # four segments


class _KeepOnClose(io.BytesIO):
    value = b""

    def close(self) -> None:
        self.value = self.getvalue()
        super().close()


@pytest.fixture(scope="module")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A Tink AES256_GCM_HKDF_1MB keyset: its primitive and its cleartext JSON file."""
    streaming_aead.register()
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    text = io.StringIO()
    cleartext_keyset_handle.write(JsonKeysetWriter(text), handle)
    path = tmp_path_factory.mktemp("keys") / "keyset.json"
    path.write_text(text.getvalue())
    return handle.primitive(streaming_aead.StreamingAead), path


def test_tink_ciphertext_decrypts_with_veil_model_decrypt(
    keyset: tuple[Any, Path], tmp_path: Path
) -> None:
    """A file Tink encrypts for model "m" decrypts with `veil model decrypt` and its keyset."""
    primitive, key = keyset
    sink = _KeepOnClose()
    with primitive.new_encrypting_stream(sink, model_associated_data("m")) as stream:
        stream.write(PLAINTEXT)
    (tmp_path / "m.veil").write_bytes(sink.value)
    veil("model", "decrypt", tmp_path / "m.veil", tmp_path / "m.bin", "--key", key,
         "--model-name", "m", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "m.bin").read_bytes() == PLAINTEXT


def test_veil_model_encrypt_decrypts_with_tink(keyset: tuple[Any, Path], tmp_path: Path) -> None:
    """A file `veil model encrypt` makes opens with Tink's decrypting stream."""
    primitive, key = keyset
    (tmp_path / "m.bin").write_bytes(PLAINTEXT)
    veil("model", "encrypt", tmp_path / "m.bin", tmp_path / "m.veil", "--key", key,
         "--model-name", "m", cwd=tmp_path)  # fmt: skip
    with primitive.new_decrypting_stream(
        io.BytesIO((tmp_path / "m.veil").read_bytes()), model_associated_data("m")
    ) as stream:
        assert stream.read() == PLAINTEXT


@pytest.mark.parametrize(
    "damage",
    ["flip", "truncate", "extend", "swap", "wrong-name", "wrong-key"],
)
def test_decrypt_refuses_tampering_and_writes_nothing(tmp_path: Path, damage: str) -> None:
    """Every tamper case, a wrong model name and a wrong key exit 1-2 and leave no plaintext."""
    runner = CliRunner()
    key = tmp_path / "k"
    other = tmp_path / "other"
    for path in (key, other):
        assert runner.invoke(cli, ["model", "keygen", "-o", str(path)]).exit_code == 0
    (tmp_path / "m.bin").write_bytes(PLAINTEXT)
    encrypt = ["model", "encrypt", str(tmp_path / "m.bin"), str(tmp_path / "m.veil")]
    assert runner.invoke(cli, [*encrypt, "--key", str(key), "--model-name", "m"]).exit_code == 0
    blob = bytearray((tmp_path / "m.veil").read_bytes())
    segment = 1 << 20
    name, used_key = "m", key
    if damage == "flip":
        blob[len(blob) // 2] ^= 1
    elif damage == "truncate":
        del blob[-segment // 2 :]
    elif damage == "extend":
        blob += b"\x00" * 32
    elif damage == "swap":
        first, second = blob[segment : 2 * segment], blob[2 * segment : 3 * segment]
        blob[segment : 2 * segment], blob[2 * segment : 3 * segment] = second, first
    elif damage == "wrong-name":
        name = "n"
    else:
        used_key = other
    (tmp_path / "m.veil").write_bytes(bytes(blob))
    result = runner.invoke(
        cli,
        ["model", "decrypt", str(tmp_path / "m.veil"), str(tmp_path / "out.bin"),
         "--key", str(used_key), "--model-name", name],
    )  # fmt: skip
    assert result.exit_code in (1, 2), result.output
    assert not (tmp_path / "out.bin").exists()


def test_memory_urls_and_inspect_never_print_the_key(tmp_path: Path) -> None:
    """encrypt/decrypt read and write fsspec URLs; inspect shows the header and sizes only."""
    runner = CliRunner()
    key = tmp_path / "k"
    assert runner.invoke(cli, ["model", "keygen", "-o", str(key)]).exit_code == 0
    with fsspec.open("memory://in/model.onnx", "wb") as handle:
        handle.write(PLAINTEXT)
    steps = [
        ["model", "encrypt", "memory://in/model.onnx", "memory://out/model.onnx.veil"],
        ["model", "decrypt", "memory://out/model.onnx.veil", "memory://back/model.onnx"],
    ]
    for step in steps:
        result = runner.invoke(cli, [*step, "--key", str(key), "--model-name", "m"])
        assert result.exit_code == 0, result.output
    with fsspec.open("memory://back/model.onnx", "rb") as handle:
        assert handle.read() == PLAINTEXT
    result = runner.invoke(cli, ["model", "inspect", "memory://out/model.onnx.veil", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["plaintext_size"] == len(PLAINTEXT)
    assert info["segment_size"] == 1 << 20
    assert info["segments"] == 4
    assert key.read_bytes().hex() not in result.output
    not_model = runner.invoke(cli, ["model", "inspect", "memory://in/model.onnx"])
    assert not_model.exit_code == 2
