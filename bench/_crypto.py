"""Scenario 3: model decryption against OpenSSL (same run), and key to first prediction."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _procs import LOAD_CORE
from _serving import stats
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.modelcrypto import decrypt_bytes, decrypt_stream, model_associated_data

HERE = Path(__file__).resolve().parent
GB = 1e9


def openssl_speed(*, decrypt: bool, seconds: int) -> float:
    """GB/s of ``openssl speed -evp aes-256-gcm`` at 16 KiB blocks, one core (pinned)."""
    argv = ["taskset", "-c", LOAD_CORE, "openssl", "speed", "-seconds", str(seconds),
            "-bytes", "16384", "-evp", "aes-256-gcm"]  # fmt: skip
    if decrypt:
        argv.append("-decrypt")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"AES-256-GCM\s+([\d.]+)k", out)
    if not match:
        raise RuntimeError(f"cannot parse openssl speed output: {out[-300:]}")
    return float(match.group(1)) * 1000 / GB


def cryptography_stream(plaintext_len: int, reps: int) -> list[float]:
    """GB/s of ``cryptography`` GCM decrypting 1 MiB chunks into one preallocated buffer."""
    key, nonce = AESGCM.generate_key(256), os.urandom(12)
    data = os.urandom(plaintext_len)
    ct = AESGCM(key).encrypt(nonce, data, None)
    body, tag = memoryview(ct)[:-16], ct[-16:]
    out = bytearray(plaintext_len + 15)
    rates = []
    for _ in range(reps):
        t = time.perf_counter()
        dec = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
        view = memoryview(out)
        pos = 0
        step = 1 << 20
        while pos < plaintext_len:
            n = dec.update_into(body[pos : pos + step], view[pos:])
            pos += n
        dec.finalize()
        rates.append(plaintext_len / GB / (time.perf_counter() - t))
    return rates


def decrypt_rates(enc_file: Path, name: str, key: bytes, reps: int) -> dict[str, Any]:
    """veil's decrypt_bytes (ciphertext in memory) and decrypt_stream (from the file)."""
    ad = model_associated_data(name)
    ct = enc_file.read_bytes()
    mem, stream = [], []
    size = 0
    for _ in range(reps):
        t = time.perf_counter()
        pt = decrypt_bytes(ct, key=key, associated_data=ad)
        mem.append(len(pt) / GB / (time.perf_counter() - t))
        size = len(pt)
        del pt
        t = time.perf_counter()
        with enc_file.open("rb") as fh:
            pt = decrypt_stream(fh, key=key, associated_data=ad)
        stream.append(len(pt) / GB / (time.perf_counter() - t))
        del pt
    return {
        "plaintext_bytes": size,
        "decrypt_bytes_gb_s": stats(mem),
        "decrypt_stream_from_file_gb_s": stats(stream),
    }


def key_to_first_prediction(
    base: Path, name: str, key_file: Path, body: Path, reps: int
) -> dict[str, Any]:
    runs = []
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, str(HERE / "_keyload.py"), str(base), name, str(key_file), str(body)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if out.returncode != 0:
            raise RuntimeError(f"key-to-first-prediction failed: {out.stderr[-800:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "total_s": stats([r["total_s"] for r in runs]),
        "key_to_loaded_s": stats([r["key_to_loaded_s"] for r in runs]),
        "first_predict_s": stats([r["first_predict_s"] for r in runs]),
        "peak_rss_gb": stats([r["peak_rss_gb"] for r in runs]),
        "runs": runs,
    }


def load_breakdown(enc_file: Path, name: str, key: bytes, reps: int) -> dict[str, Any]:
    """Where a large model's load time goes, step by step (the profile of ``load_1gb_s``).

    Each step of veil's load path timed on its own: read the ciphertext, allocate a fresh
    plaintext buffer (page faults), decrypt, copy to ``bytes`` (ONNX Runtime takes no
    bytearray), build the ONNX Runtime session; plus two alternatives (a huge-page mmap
    buffer; ORT with weight prepacking disabled).
    """
    import ctypes
    import mmap

    import onnxruntime as ort

    ad = model_associated_data(name)
    steps: dict[str, list[float]] = {
        k: []
        for k in ("read_file", "alloc_bytearray", "alloc_mmap_hugepage", "decrypt_bytes",
                  "copy_to_bytes", "wipe_bytes_of_len", "wipe_memset", "ort_session",
                  "ort_session_no_prepack")
    }  # fmt: skip

    def timed(key: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        value = fn(*args)
        steps[key].append(time.perf_counter() - t)
        return value

    def huge(size: int) -> None:
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        view = memoryview(m)
        view[::4096] = bytes(len(range(0, size, 4096)))
        view.release()
        m.close()

    def session(data: bytes, no_prepack: bool) -> Any:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if no_prepack:
            options.add_session_config_entry("session.disable_prepacking", "1")
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])

    def decrypt(ct: bytes) -> bytearray:
        return decrypt_bytes(ct, key=key, associated_data=ad)

    def wipe_like_veil(buf: bytearray) -> None:
        buf[:] = bytes(len(buf))  # what veil's _read_model does after loading

    def wipe_memset(buf: bytearray) -> None:
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))

    for _ in range(reps):
        ct = timed("read_file", enc_file.read_bytes)
        size = len(ct)
        timed("alloc_bytearray", bytearray, size)
        timed("alloc_mmap_hugepage", huge, size)
        pt = timed("decrypt_bytes", decrypt, ct)
        del ct
        data = timed("copy_to_bytes", bytes, pt)
        timed("wipe_bytes_of_len", wipe_like_veil, pt)
        timed("wipe_memset", wipe_memset, pt)
        del pt
        timed("ort_session", session, data, False)
        timed("ort_session_no_prepack", session, data, True)
        del data
    return {k: stats(v) for k, v in steps.items()}


def profile_key_load(
    base: Path, name: str, key_file: Path, body: Path, out: Path
) -> dict[str, Any]:
    """py-spy over one in-process key → first prediction (line numbers kept)."""
    from _env import peer_python
    from _profile import summarise

    py_spy = peer_python("tools").parent / "py-spy"
    argv = [str(py_spy), "record", "--rate", "100", "--format", "raw", "--output", str(out),
            "--", sys.executable, str(HERE / "_keyload.py"), str(base), name, str(key_file),
            str(body)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {proc.stderr[-400:]}"}
    return summarise(out, top=10, keep_lines=True)
