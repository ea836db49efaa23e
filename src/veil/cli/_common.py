"""Shared CLI plumbing: error → one sentence + exit code, options shared by stakeholders."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    EnvironmentFailure,
    Error,
    ManifestError,
    NotFoundError,
    ProtocolError,
    StateError,
    VerificationError,
)
from veil.runtime import MarbleSettings

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

#: Documented exit codes (README "Exit codes").
EXIT_OK = 0
EXIT_REFUSED = 1  # verification or authorization refused: do not proceed
EXIT_USAGE = 2  # bad flags, files, manifest or request: fix the input
EXIT_ENVIRONMENT = 3  # network or storage failed: retry or fix the environment
EXIT_STATE = 4  # not possible now (wrong state, not found yet): wait or check the deployment
EXIT_INTERNAL = 70  # a bug: rerun with --debug and report it

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error."""
    if isinstance(exc, VerificationError | AuthorizationError):
        return EXIT_REFUSED
    if isinstance(exc, ManifestError | ProtocolError | ConfigurationError):
        return EXIT_USAGE
    if isinstance(exc, EnvironmentFailure):
        return EXIT_ENVIRONMENT
    if isinstance(exc, StateError | NotFoundError):
        return EXIT_STATE
    return EXIT_INTERNAL


def handle_errors(func: F) -> F:
    """Print veil errors as one sentence (traceback only with --debug) and exit with its code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Error as exc:
            ctx = click.get_current_context(silent=True)
            debug = bool(ctx and ctx.find_root().params.get("debug"))
            if debug:
                console.print_exception()
            console.print(f"[bold red]error:[/] {exc.message}")
            sys.exit(exit_code_for(exc))

    return wrapper  # type: ignore[return-value]


def read_file(path: Path, what: str) -> bytes:
    """Read a file or raise a ConfigurationError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from None


coordinator_option = click.option(
    "--coordinator",
    "coordinator",
    envvar="VEIL_COORDINATOR_ADDR",
    required=True,
    help="Coordinator client API address HOST:PORT.",
)
coordinator_cert_option = click.option(
    "--coordinator-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="VEIL_COORDINATOR_CERT",
    required=True,
    help="The coordinator root certificate saved by 'veil verify' (pins TLS).",
)
user_cert_options = [
    click.option(
        "--cert",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help="Your user certificate (PEM), as listed in the manifest.",
    ),
    click.option(
        "--key",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help="The private key of your user certificate (PEM).",
    ),
]


def with_user_cert(func: F) -> F:
    """Add --cert/--key."""
    for option in reversed(user_cert_options):
        func = option(func)
    return func


def marble_options(*, required: bool) -> Callable[[F], F]:
    """The options every marble command shares (coordinator, type, trust, TEE, identity).

    ``required`` makes ``--coordinator``, ``--marble-type`` and ``--tee`` mandatory (``veil run``);
    ``veil serve`` also runs without a coordinator.
    """
    options = [
        click.option(
            "--coordinator",
            envvar="VEIL_MARBLE_COORDINATOR_ADDR",
            required=required,
            help="Coordinator mesh address HOST:PORT; activate as a marble.",
        ),
        click.option("--marble-type", envvar="VEIL_MARBLE_TYPE", required=required),
        click.option(
            "--coordinator-cert",
            envvar="VEIL_MARBLE_COORDINATOR_CERT",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Coordinator root; without it the coordinator is NOT authenticated.",
        ),
        click.option(
            "--uuid-file",
            envvar="VEIL_MARBLE_UUID_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            default=Path("uuid"),
            show_default=True,
        ),
        click.option(
            "--tee",
            envvar="VEIL_TEE",
            type=click.Choice(["simulated", "gramine", "tdx", "sev-snp"]),
            required=required,
            default=None,
            help="TEE this marble runs in (explicit; no fallback).",
        ),
        click.option(
            "--device-root",
            envvar="VEIL_TEE_DEVICE_ROOT",
            type=click.Path(file_okay=False, path_type=Path),
            help="Gramine /dev/attestation or configfs-tsm report directory "
            "(default: the system path).",
        ),
        click.option(
            "--simulated-platform",
            envvar="VEIL_SIMULATED_PLATFORM",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
        ),
        click.option(
            "--measure-extra-file",
            "measured_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Extra files measured into the simulated UniqueID.",
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def marble_settings(
    *,
    coordinator: str,
    marble_type: str,
    coordinator_cert: Path | None,
    uuid_file: Path,
    tee: str,
    device_root: Path | None,
    simulated_platform: Path | None,
    measured_files: tuple[Path, ...],
    entry_point: str,
) -> MarbleSettings:
    """MarbleSettings from the options of :func:`marble_options`."""
    return MarbleSettings(
        coordinator_addr=coordinator,
        marble_type=marble_type,
        uuid_file=uuid_file,
        coordinator_root_pem=read_file(coordinator_cert, "coordinator certificate")
        if coordinator_cert
        else None,
        simulated_platform=simulated_platform,
        entry_point=entry_point,
        measured_files=measured_files,
        tee=tee,
        device_root=device_root,
    )
