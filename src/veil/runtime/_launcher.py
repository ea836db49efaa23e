"""``veil run``: MarbleRun's premain for any program — activate, place parameters, exec.

The manifest's ``Files`` go into a private directory (tmpfs ``/dev/shm`` where available, mode
0700, files 0600). Relative paths are placed under it; an absolute path is accepted only if it
already lies inside it, and no path may climb out of it (``..``, symlinks). ``Env`` is set, plus
MarbleRun's ``MARBLE_PREDEFINED_*`` variables and ``VEIL_MARBLE_FILES_DIR``; a non-empty ``Argv``
replaces the command line. Then the launcher ``exec``s the program, which inherits the process.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from veil.errors import ConfigurationError
from veil.manifest import RenderedParameters
from veil.runtime._activation import Activation, MarbleSettings, activate, wait_for_parameters

__all__ = [
    "Launch",
    "exec_launch",
    "launch",
    "place_parameters",
    "prepare_launch",
    "private_directory",
]

_log = logging.getLogger(__name__)

FILES_DIR_ENV = "VEIL_MARBLE_FILES_DIR"
_TMPFS = Path("/dev/shm")  # noqa: S108 - tmpfs on purpose; mkdtemp makes a private 0700 dir


@dataclass(frozen=True)
class Launch:
    """What ``exec`` gets: the program's argv and its complete environment."""

    argv: tuple[str, ...]
    env: dict[str, str]
    files_dir: Path


def private_directory(parent: Path | None = None) -> Path:
    """A new 0700 directory on tmpfs (``/dev/shm``) when writable, else the system temp dir."""
    if parent is None and _TMPFS.is_dir() and os.access(_TMPFS, os.W_OK):
        parent = _TMPFS
    return Path(tempfile.mkdtemp(prefix="veil-marble-", dir=parent))


def _target(directory: Path, name: str) -> Path:
    root = directory.resolve()
    path = Path(name)
    if not name or "\x00" in name:
        raise ConfigurationError("The manifest names a file with an empty or invalid path.")
    candidate = path if path.is_absolute() else root / path
    resolved = candidate.resolve()
    if resolved == root or root not in resolved.parents:
        raise ConfigurationError(
            f"The manifest file path {name!r} leaves the marble's private directory {root}; "
            "use a relative path (placed under it) or an absolute path inside it."
        )
    return resolved


def place_parameters(
    params: RenderedParameters, directory: Path, *, base_env: Mapping[str, str]
) -> dict[str, str]:
    """Write ``params.files`` under ``directory`` (0600) and return the environment to exec with."""
    directory.chmod(0o700)
    targets = {name: _target(directory, name) for name in params.files}
    for name, target in targets.items():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(params.files[name])
        _log.info("file placed", extra={"event": "marble.file", "path": str(target)})
    env = dict(base_env)
    for key, value in params.env.items():
        try:
            env[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"Manifest Env {key} is not UTF-8 text; use the hex or base64 encoder."
            ) from None
        if "\x00" in env[key]:
            raise ConfigurationError(f"Manifest Env {key} contains a NUL byte.")
    env[FILES_DIR_ENV] = str(directory)
    return env


def prepare_launch(
    activation: Activation,
    params: RenderedParameters,
    command: Sequence[str],
    *,
    directory: Path,
    base_env: Mapping[str, str],
) -> Launch:
    """Place files, build the environment (+ MARBLE_PREDEFINED_*) and pick the argv."""
    env = place_parameters(params, directory, base_env=base_env)
    env.update(
        {
            "MARBLE_PREDEFINED_ROOT_CA": activation.marble_root_pem.decode(),
            "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN": activation.certificate_chain_pem.decode(),
            "MARBLE_PREDEFINED_PRIVATE_KEY": activation.private_key_pem.decode(),
            "MARBLE_PREDEFINED_COORDINATOR_ROOT_CA": activation.coordinator_root_pem.decode(),
        }
    )
    argv = tuple(params.argv) if params.argv else tuple(command)
    if not argv:
        raise ConfigurationError(
            "Nothing to run: give a command after '--' or Argv in the manifest."
        )
    return Launch(argv=argv, env=env, files_dir=directory)


def launch(
    settings: MarbleSettings,
    command: Sequence[str],
    *,
    files_parent: Path | None = None,
    parameter_timeout: float | None = None,
) -> Launch:
    """Activate, wait for pending secrets, place parameters; the caller ``exec``s the result."""
    activation = activate(settings)
    params = activation.parameters
    if params is None:
        _log.info(
            "waiting for user-defined secrets",
            extra={"event": "marble.pending", "secrets": list(activation.pending_secrets)},
        )
        params = wait_for_parameters(settings, activation, timeout=parameter_timeout)
    directory = private_directory(files_parent)
    return prepare_launch(activation, params, command, directory=directory, base_env=os.environ)


def exec_launch(prepared: Launch) -> None:
    """Replace this process with the program (never returns)."""
    _log.info("exec", extra={"event": "marble.exec", "program": prepared.argv[0]})
    try:
        os.execvpe(prepared.argv[0], list(prepared.argv), prepared.env)  # noqa: S606 - the marble's program
    except OSError as exc:
        raise ConfigurationError(f"Cannot run {prepared.argv[0]!r}: {exc.strerror}.") from None
