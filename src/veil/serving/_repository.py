"""Model versions on disk and their load state; decrypts encrypted models straight into memory."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from veil.errors import ConfigurationError, Error, IntegrityError, NotFoundError, StateError
from veil.modelcrypto import decrypt_bytes, model_associated_data
from veil.serving._config import ModelConfig
from veil.serving._onnx import OnnxModel

__all__ = ["ModelRepository", "State", "VersionStatus"]

_log = logging.getLogger(__name__)

PLAINTEXT_FILE = "model.onnx"
ENCRYPTED_FILE = "model.onnx.veil"


class State(enum.Enum):
    """TF Serving's ModelVersionStatus.State; START also means "waiting for its key"."""

    START = 10
    LOADING = 20
    AVAILABLE = 30
    END = 50


@dataclass(frozen=True)
class VersionStatus:
    """The load state of one model version; ``error_code`` is a tensorflow.error.Code name."""

    version: int
    state: State
    error_code: str = "OK"
    error_message: str = ""
    model: OnnxModel | None = None


@dataclass(frozen=True)
class _Version:
    number: int
    path: Path
    encrypted: bool


class ModelRepository:
    """Tracks the latest version of each configured model; state changes happen on the loop."""

    def __init__(self, models: Iterable[ModelConfig]) -> None:
        self._configs = {model.name: model for model in models}
        self._versions: dict[str, _Version] = {}
        self._status: dict[str, VersionStatus] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._changed = asyncio.Event()

    def names(self) -> list[str]:
        """Configured model names."""
        return list(self._configs)

    async def load_all(self) -> None:
        """Find each model's latest version and load the plaintext ones (in worker threads)."""
        self._changed = asyncio.Event()  # bind to the running loop
        for name, config in self._configs.items():
            version = await asyncio.to_thread(_latest_version, config)
            if version is None:
                _log.warning("no versions found", extra={"model": name, "path": config.base_path})
                continue
            self._versions[name] = version
            self._locks[name] = asyncio.Lock()
            self._set(name, VersionStatus(version.number, State.START))
        await asyncio.gather(
            *(self._load(name, None) for name, v in self._versions.items() if not v.encrypted)
        )

    def encrypted_waiting(self, name: str | None) -> list[str]:
        """Encrypted models (all, or just ``name``) that are not available yet."""
        if name is not None and name not in self._configs:
            raise NotFoundError(f"No model named {name!r} is configured; check the model name.")
        return [
            model
            for model, version in self._versions.items()
            if version.encrypted
            and name in (None, model)
            and self._status[model].state is not State.AVAILABLE
        ]

    async def load_encrypted(self, name: str, key: bytes) -> None:
        """Decrypt ``name``'s latest version with ``key`` into memory and load it."""
        await self._load(name, key)

    async def _load(self, name: str, key: bytes | None) -> None:
        version = self._versions[name]
        async with self._locks[name]:
            if self._status[name].state is State.AVAILABLE:
                return
            self._set(name, VersionStatus(version.number, State.LOADING))
            try:
                model = await asyncio.to_thread(_read_model, name, version, key)
            except IntegrityError:
                _log.error(
                    "model decryption failed", extra={"model": name, "version": version.number}
                )
                self._set(name, _failed(version, "DATA_LOSS", _decrypt_failure(name, version)))
            except Error as exc:
                _log.error(
                    "model load failed",
                    extra={"model": name, "version": version.number, "reason": exc.message},
                )
                self._set(name, _failed(version, "INVALID_ARGUMENT", exc.message))
            except Exception:  # noqa: BLE001 - a bug must not leave the version LOADING forever
                _log.exception(
                    "model load crashed", extra={"model": name, "version": version.number}
                )
                message = f"Model {name} version {version.number} failed to load; see server logs."
                self._set(name, _failed(version, "INTERNAL", message))
            else:
                _log.info("model loaded", extra={"model": name, "version": version.number})
                self._set(name, VersionStatus(version.number, State.AVAILABLE, model=model))

    def _set(self, name: str, status: VersionStatus) -> None:
        self._status[name] = status
        self._changed.set()
        self._changed = asyncio.Event()

    def available(self, name: str, version: int | None) -> tuple[int, OnnxModel]:
        """The loaded model, or NotFoundError with TF Serving's "Servable not found" message."""
        status = self._status.get(name)
        if (
            status is None
            or status.model is None
            or (version is not None and version != status.version)
        ):
            wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise NotFoundError(f"Servable not found for request: {wanted}")
        return status.version, status.model

    def statuses(self, name: str, version: int | None) -> list[VersionStatus]:
        """Version statuses for the status API, with TF Serving's NotFound messages."""
        status = self._status.get(name)
        if status is None:
            raise NotFoundError(f"Could not find any versions of model {name}")
        if version is not None and version != status.version:
            raise NotFoundError(f"Could not find version {version} of model {name}")
        return [status]

    def summary(self) -> dict[str, str]:
        """Model name → AVAILABLE, LOADING, WAITING_FOR_KEY, ERROR or NO_VERSION."""
        result = {}
        for name in self._configs:
            status = self._status.get(name)
            if status is None:
                result[name] = "NO_VERSION"
            elif status.state is State.START:
                result[name] = "WAITING_FOR_KEY" if self._versions[name].encrypted else "LOADING"
            elif status.state is State.END:
                result[name] = "ERROR"
            else:
                result[name] = status.state.name
        return result

    async def wait_loaded(self, name: str, timeout: float) -> None:  # noqa: ASYNC109 - public API
        """Wait until ``name`` is available; StateError on a load error or after ``timeout``."""
        if name not in self._configs:
            raise NotFoundError(f"No model named {name!r} is configured; check the model name.")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    status = self._status.get(name)
                    if status is not None and status.state is State.AVAILABLE:
                        return
                    if status is not None and status.state is State.END:
                        raise StateError(status.error_message)
                    await changed.wait()
        except TimeoutError:
            raise StateError(
                f"Model {name} was not loaded within {timeout:g} s; state: {self.summary()[name]}.",
                retryable=True,
            ) from None


def _failed(version: _Version, code: str, message: str) -> VersionStatus:
    return VersionStatus(version.number, State.END, error_code=code, error_message=message)


def _decrypt_failure(name: str, version: _Version) -> str:
    return (
        f"Model {name} version {version.number} could not be decrypted: the key is wrong or the "
        "file was modified; provide the right key or re-encrypt the model."
    )


def _latest_version(config: ModelConfig) -> _Version | None:
    base = Path(config.base_path)
    if not base.is_dir():
        raise ConfigurationError(
            f"Base path {config.base_path} of model {config.name} is not a directory; create it "
            "with one sub-directory per integer version."
        )
    numbers = [
        (int(child.name), child)
        for child in base.iterdir()
        if child.name.isascii() and child.name.isdigit() and child.is_dir()
    ]
    if not numbers:
        return None
    number, path = max(numbers, key=lambda item: item[0])
    plain, encrypted = path / PLAINTEXT_FILE, path / ENCRYPTED_FILE
    if plain.exists() and encrypted.exists():
        raise ConfigurationError(
            f"{path} holds both {PLAINTEXT_FILE} and {ENCRYPTED_FILE}; keep only one."
        )
    return _Version(number, encrypted if encrypted.exists() else plain, encrypted.exists())


def _read_model(name: str, version: _Version, key: bytes | None) -> OnnxModel:
    """Runs in a worker thread. Encrypted models are decrypted into memory only."""
    label = f"model {name} version {version.number}"
    try:
        data = version.path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"Cannot read {version.path}: {exc.strerror}.") from exc
    if not version.encrypted:
        return OnnxModel(data, label=label)
    if key is None:
        raise StateError(f"{label} is encrypted and needs its key.", retryable=True)
    plaintext = decrypt_bytes(data, key=key, associated_data=model_associated_data(name))
    try:
        return OnnxModel(bytes(plaintext), label=label)
    finally:
        plaintext[:] = bytes(len(plaintext))  # best effort: the bytes copy cannot be wiped
