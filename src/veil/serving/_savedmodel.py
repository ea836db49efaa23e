"""The TensorFlow SavedModel runtime (``veil[tensorflow]``), run like TF Serving runs it.

TF Serving runs a TF1 session by tensor names from the signature, without Python's static shape
checks (it feeds ``[3]`` into a tensor declared ``[-1, 1]``); this runtime does the same through
``Session._call_tf_sessionrun``. Encrypted SavedModels (``saved_model.tar.veil``) are decrypted
into memory and unpacked into TensorFlow's in-memory ``ram://`` filesystem, never to disk.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import logging
import os
import secrets
import tarfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from veil.errors import ConfigurationError
from veil.serving._runtime import Signature
from veil.serving._signatures import SERVE_TAG, read_saved_model_signatures

__all__ = ["SavedModel", "tensorflow_available"]

_log = logging.getLogger(__name__)
_RAM_LOCK = threading.Lock()


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported (the ``veil[tensorflow]`` extra)."""
    return importlib.util.find_spec("tensorflow") is not None


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        tf = importlib.import_module("tensorflow")  # untyped; an optional extra
    except ImportError:
        raise ConfigurationError(
            "This model is a TensorFlow SavedModel; install veil[tensorflow] to serve it."
        ) from None
    return tf


class SavedModel:
    """A SavedModel loaded into a TF1 session; signatures from its ``serve`` meta graph."""

    platform = "tensorflow_savedmodel"
    inline = False

    def __init__(self, export_dir: str, *, saved_model_pb: bytes, label: str) -> None:
        """Load ``export_dir`` (a local path or a ``ram://`` URL)."""
        tf = _tf()
        self.signatures, self._signature_def_map = read_saved_model_signatures(
            saved_model_pb, label=label
        )
        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=0)
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        try:
            tf.compat.v1.saved_model.loader.load(self._session, [SERVE_TAG], export_dir)
        except Exception as exc:  # TF raises many unrelated types
            raise ConfigurationError(
                f"TensorFlow could not load {label}: {type(exc).__name__}; check the SavedModel."
            ) from exc

    @classmethod
    def from_directory(cls, path: Path, *, label: str) -> SavedModel:
        """Load a plaintext SavedModel directory."""
        return cls(str(path), saved_model_pb=(path / "saved_model.pb").read_bytes(), label=label)

    @classmethod
    def from_tar(cls, archive: bytes | bytearray, *, label: str) -> SavedModel:
        """Load a SavedModel from an in-memory tar (decrypted), through ``ram://`` only."""
        tf = _tf()
        root = f"ram://veil-{secrets.token_hex(8)}"
        saved_model_pb = None
        with _RAM_LOCK, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                relative = PurePosixPath(member.name)
                if relative.is_absolute() or ".." in relative.parts:
                    raise ConfigurationError(f"{label}: the archive holds an unsafe path.")
                if not member.isfile():
                    continue
                parts = [p for p in relative.parts if p != "."]
                target = "/".join([root, *parts])
                tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
                extracted = tar.extractfile(member)
                assert extracted is not None  # noqa: S101 - regular file
                data = extracted.read()
                if parts == ["saved_model.pb"]:
                    saved_model_pb = data
                with tf.io.gfile.GFile(target, "wb") as out:
                    out.write(data)
        try:
            if saved_model_pb is None:
                raise ConfigurationError(f"{label}: the archive has no saved_model.pb at its top.")
            return cls(root, saved_model_pb=saved_model_pb, label=label)
        finally:
            tf.io.gfile.rmtree(root)

    def signature_def_map(self) -> bytes:
        """The SavedModel's own SignatureDefMap, serialized."""
        return self._signature_def_map

    def run(
        self, signature: Signature, feeds: Mapping[str, Any], outputs: Sequence[str]
    ) -> list[Any]:
        """Run by tensor names; thread-safe (TF sessions are)."""
        inputs = {spec.name: spec.graph_name for spec in signature.inputs}
        fetch_names = {spec.name: spec.graph_name for spec in signature.outputs}
        feed = {
            self._graph.get_tensor_by_name(inputs[alias])._as_tf_output(): np.asarray(value)
            for alias, value in feeds.items()
        }
        fetch = [
            self._graph.get_tensor_by_name(fetch_names[alias])._as_tf_output() for alias in outputs
        ]
        return list(self._session._call_tf_sessionrun(None, feed, fetch, [], None))
