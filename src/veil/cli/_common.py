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
