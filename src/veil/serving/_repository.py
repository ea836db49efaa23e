"""Model versions on disk and their load state; decrypts encrypted models straight into memory.

Each model's base path is scanned for integer version directories; its version policy picks the
versions to serve. :meth:`ModelRepository.poll` (run every ``file_system_poll_wait_s``) loads new
versions and unloads old ones only once a newer one is available (TF Serving's
availability-preserving policy), so a request never finds no version during a rollover.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from veil.errors import (
    ConfigurationError,
    Error,
    IntegrityError,
    NotFoundError,
    ProtocolError,
    StateError,
)
from veil.modelcrypto import decrypt_bytes, model_associated_data
from veil.serving._config import ModelConfig
from veil.serving._onnx import OnnxModel
from veil.serving._runtime import Servable

__all__ = ["ModelRepository", "State", "VersionStatus"]

_log = logging.getLogger(__name__)

PLAINTEXT_FILE = "model.onnx"
ENCRYPTED_FILE = "model.onnx.veil"
SAVED_MODEL_FILE = "saved_model.pb"
ENCRYPTED_SAVED_MODEL_FILE = "saved_model.tar.veil"


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
    model: Servable | None = None


@dataclass(frozen=True)
class _Version:
    number: int
    path: Path
    kind: str  # "onnx" | "saved_model"
    encrypted: bool


@dataclass
class _Model:
    config: ModelConfig
    versions: dict[int, _Version] = field(default_factory=dict)
    status: dict[int, VersionStatus] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    key: bytes | None = field(default=None, repr=False)


class ModelRepository:
    """Tracks the served versions of each configured model; state changes happen on the loop."""

    def __init__(self, models: Iterable[ModelConfig]) -> None:
        self._configs = {model.name: model for model in models}
        self._models: dict[str, _Model] = {}
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def names(self) -> list[str]:
        """Configured model names."""
        return list(self._configs)

    def config(self, name: str) -> ModelConfig:
        """The configuration of ``name``."""
        return self._configs[name]

    async def load_all(self) -> None:
        """Find each model's versions and load the plaintext ones (in worker threads)."""
        self._changed = asyncio.Event()  # bind to the running loop
        for name, config in self._configs.items():
            self._models[name] = _Model(config)
        await self.poll(wait=True, strict=True)

    async def reconfigure(self, models: Iterable[ModelConfig]) -> None:
        """Replace the model list (HandleReloadConfigRequest): add, change and drop models."""
        configs = {model.name: model for model in models}
        for name in list(self._models):
            if name not in configs:
                del self._models[name]
                _log.info("model unloaded", extra={"model": name})
        for name, config in configs.items():
            model = self._models.get(name)
            if model is None:
                self._models[name] = _Model(config)
            else:
                model.config = config
        self._configs = configs
        await self.poll(wait=True, strict=True)
        self._notify()

    async def poll(self, *, wait: bool = False, strict: bool = False) -> None:
        """Scan the base paths: load new versions, unload versions no longer served."""
        loads = []
        for name, model in list(self._models.items()):
            try:
                found = await asyncio.to_thread(_scan, model.config)
            except ConfigurationError:
                if strict:
                    raise
                _log.exception("model scan failed", extra={"model": name})
                continue
            if not found and not model.versions:
                _log.warning(
                    "no versions found", extra={"model": name, "path": model.config.base_path}
                )
            wanted = model.config.version_policy.select(found)
            for number in sorted(wanted - set(model.versions)):
                version = found[number]
                model.versions[number] = version
                model.status[number] = VersionStatus(number, State.START)
                if not version.encrypted or model.key is not None:
                    loads.append(self._load(name, number, model.key))
            self._retire(model, wanted)
        if loads:
            self._notify()
            if wait:
                await asyncio.gather(*loads)
            else:
                for load in loads:
                    task = asyncio.create_task(load)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    def _retire(self, model: _Model, wanted: set[int]) -> None:
        """Drop unwanted versions once a wanted one is available (or none is wanted)."""
        stale = set(model.versions) - wanted
        if not stale:
            return
        available = any(
            model.status[v].state is State.AVAILABLE for v in wanted if v in model.status
        )
        if available or not wanted:
            for number in stale:
                del model.versions[number]
                del model.status[number]
                _log.info("version unloaded", extra={"model": model.config.name, "version": number})
            self._notify()

    def encrypted_waiting(self, name: str | None) -> list[tuple[str, int]]:
        """(model, version) pairs of encrypted versions that are not available yet."""
        if name is not None and name not in self._configs:
            raise NotFoundError(f"No model named {name!r} is configured; check the model name.")
        return [
            (model_name, number)
            for model_name, model in self._models.items()
            if name in (None, model_name)
            for number, version in model.versions.items()
            if version.encrypted and model.status[number].state is not State.AVAILABLE
        ]

    def has_encrypted(self, name: str) -> bool:
        """Whether ``name`` has any encrypted version."""
        return any(v.encrypted for v in self._models[name].versions.values())

    async def load_encrypted(self, name: str, number: int, key: bytes) -> None:
        """Decrypt one version with ``key`` into memory and load it; keep the key for new ones."""
        self._models[name].key = key
        await self._load(name, number, key)

    def remember_key(self, name: str, key: bytes) -> None:
        """Keep ``key`` (in memory) for encrypted versions of ``name`` that appear later."""
        self._models[name].key = key

    async def _load(self, name: str, number: int, key: bytes | None) -> None:
        model = self._models[name]
        version = model.versions.get(number)
        if version is None:
            return
        async with model.lock:
            current = model.status.get(number)
            if current is None or current.state is State.AVAILABLE:
                return
            model.status[number] = VersionStatus(number, State.LOADING)
            self._notify()
            try:
                loaded = await asyncio.to_thread(_read_model, name, version, key)
            except IntegrityError:
                _log.error("model decryption failed", extra={"model": name, "version": number})
                status = _failed(version, "DATA_LOSS", _decrypt_failure(name, version))
            except Error as exc:
                _log.error(
                    "model load failed",
                    extra={"model": name, "version": number, "reason": exc.message},
                )
                status = _failed(version, "INVALID_ARGUMENT", exc.message)
            except Exception:  # noqa: BLE001 - a bug must not leave the version LOADING forever
                _log.exception("model load crashed", extra={"model": name, "version": number})
                message = f"Model {name} version {number} failed to load; see server logs."
                status = _failed(version, "INTERNAL", message)
            else:
                _log.info("model loaded", extra={"model": name, "version": number})
                status = VersionStatus(number, State.AVAILABLE, model=loaded)
            if number in model.versions:
                model.status[number] = status
                self._retire(model, model.config.version_policy.select(model.versions))
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def resolve_label(self, name: str, label: str) -> int:
        """The version a label points to; ProtocolError for an unknown label."""
        model = self._models.get(name)
        version = None if model is None else model.config.labels.get(label)
        if version is None:
            raise ProtocolError(f"Unrecognized servable version label: {label}")
        return version

    def available(self, name: str, version: int | None) -> tuple[int, Servable]:
        """The loaded model, or NotFoundError with TF Serving's "Servable not found" message."""
        model = self._models.get(name)
        if model is not None:
            if version is None:
                ready = [s for s in model.status.values() if s.model is not None]
                if ready:
                    best = max(ready, key=lambda s: s.version)
                    assert best.model is not None  # noqa: S101 - filtered above
                    return best.version, best.model
            else:
                status = model.status.get(version)
                if status is not None and status.model is not None:
                    return version, status.model
        wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise NotFoundError(f"Servable not found for request: {wanted}")

    def statuses(self, name: str, version: int | None) -> list[VersionStatus]:
        """Version statuses for the status API, with TF Serving's NotFound messages."""
        model = self._models.get(name)
        if model is None or not model.status:
            raise NotFoundError(f"Could not find any versions of model {name}")
        if version is None:
            return [model.status[v] for v in sorted(model.status, reverse=True)]
        if version not in model.status:
            raise NotFoundError(f"Could not find version {version} of model {name}")
        return [model.status[version]]

    def summary(self) -> dict[str, str]:
        """Model name → AVAILABLE, LOADING, WAITING_FOR_KEY, ERROR or NO_VERSION."""
        result = {}
        for name in self._configs:
            model = self._models.get(name)
            if model is None or not model.status:
                result[name] = "NO_VERSION"
                continue
            states = [model.status[v] for v in sorted(model.status, reverse=True)]
            if any(s.state is State.AVAILABLE for s in states):
                result[name] = "AVAILABLE"
            elif any(s.state is State.LOADING for s in states):
                result[name] = "LOADING"
            elif any(s.state is State.START for s in states):
                encrypted = any(v.encrypted for v in model.versions.values())
                result[name] = "WAITING_FOR_KEY" if encrypted else "LOADING"
            else:
                result[name] = "ERROR"
        return result

    def error(self, name: str) -> str:
        """The newest version's error message (for wait_loaded)."""
        model = self._models[name]
        for number in sorted(model.status, reverse=True):
            if model.status[number].state is State.END:
                return model.status[number].error_message
        return ""

    async def wait_loaded(self, name: str, timeout: float) -> None:  # noqa: ASYNC109 - public API
        """Wait until ``name`` is available; StateError on a load error or after ``timeout``."""
        if name not in self._configs:
            raise NotFoundError(f"No model named {name!r} is configured; check the model name.")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    state = self.summary()[name]
                    if state == "AVAILABLE":
                        return
                    if state == "ERROR":
                        raise StateError(self.error(name))
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


def _scan(config: ModelConfig) -> dict[int, _Version]:
    base = Path(config.base_path)
    if not base.is_dir():
        raise ConfigurationError(
            f"Base path {config.base_path} of model {config.name} is not a directory; create it "
            "with one sub-directory per integer version."
        )
    found = {}
    for child in base.iterdir():
        if not (child.name.isascii() and child.name.isdigit() and child.is_dir()):
            continue
        if int(child.name) >= 2**63:  # TF Serving versions are int64
            _log.warning("ignoring version directory %s: beyond int64", child.name)
            continue
        version = _version(int(child.name), child)
        if version is not None:
            found[version.number] = version
    return found


def _version(number: int, path: Path) -> _Version | None:
    candidates = [
        (path / PLAINTEXT_FILE, "onnx", False),
        (path / ENCRYPTED_FILE, "onnx", True),
        (path / SAVED_MODEL_FILE, "saved_model", False),
        (path / ENCRYPTED_SAVED_MODEL_FILE, "saved_model", True),
    ]
    present = [(file, kind, encrypted) for file, kind, encrypted in candidates if file.exists()]
    if len(present) > 1:
        names = " and ".join(file.name for file, _, _ in present)
        raise ConfigurationError(f"{path} holds both {names}; keep only one.")
    if not present:
        return None  # a version being copied in: picked up by a later poll
    file, kind, encrypted = present[0]
    return _Version(number, file, kind, encrypted)


def _read_model(name: str, version: _Version, key: bytes | None) -> Servable:
    """Runs in a worker thread. Encrypted models are decrypted into memory only."""
    label = f"model {name} version {version.number}"
    if version.kind == "saved_model" and not version.encrypted:
        from veil.serving._savedmodel import SavedModel

        return SavedModel.from_directory(version.path.parent, label=label)
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
        if version.kind == "saved_model":
            from veil.serving._savedmodel import SavedModel

            return SavedModel.from_tar(plaintext, label=label)
        return OnnxModel(bytes(plaintext), label=label)
    finally:
        plaintext[:] = bytes(len(plaintext))  # best effort: the bytes copy cannot be wiped
