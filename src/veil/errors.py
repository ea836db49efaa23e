"""The one error hierarchy of veil.

Every error veil raises on purpose derives from :class:`Error`. The family tells who must act::

    Error
    ├── VerificationError        a remote party's evidence, certificate or ciphertext is not trustworthy
    │   ├── EvidenceError        TEE evidence failed a verification step (``step`` names it)
    │   ├── PolicyError          evidence is genuine but does not match the policy / manifest package
    │   └── IntegrityError       a ciphertext or signature was tampered with, truncated or is for
    │                            another key / associated data
    ├── ManifestError            a manifest (or a template in it) is invalid; ``path`` names the field
    ├── ProtocolError            a peer sent something malformed, oversized or out of order
    ├── StateError               the operation is not allowed in the current state (``retryable``)
    ├── AuthorizationError       the caller is not allowed to do this (unknown user, missing role)
    ├── NotFoundError            the named thing (secret, model, version) does not exist (yet)
    ├── ConfigurationError       the local settings or files given to veil are wrong
    └── EnvironmentFailure       the environment failed us
        ├── NetworkError         a peer could not be reached
        └── StorageError         the local store could not be read, written or unsealed

Messages are one sentence that says what happened and what to do next. Messages about secrets
stay vague on purpose: they never include secret values, key bytes or plaintext.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "ConfigurationError",
    "EnvironmentFailure",
    "Error",
    "EvidenceError",
    "IntegrityError",
    "ManifestError",
    "NetworkError",
    "NotFoundError",
    "PolicyError",
    "ProtocolError",
    "StateError",
    "StorageError",
    "VerificationError",
]


class Error(Exception):
    """Root of every error veil raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class VerificationError(Error):
    """Evidence, a certificate, a signature or a ciphertext could not be verified."""


class EvidenceError(VerificationError):
    """A numbered verification step failed; ``step`` names it (e.g. ``"signature"``)."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step


class PolicyError(VerificationError):
    """Genuine evidence whose claims do not satisfy the policy."""

    def __init__(self, message: str, *, claim: str) -> None:
        super().__init__(message)
        self.claim = claim


class IntegrityError(VerificationError):
    """A ciphertext or signed object was modified, truncated, reordered or is for another key."""


class ManifestError(Error):
    """The manifest is invalid. ``path`` is the JSON path of the offending field, if known."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ProtocolError(Error):
    """A peer sent a malformed, oversized or out-of-order message."""


class StateError(Error):
    """Not allowed in the current state. ``retryable`` says whether waiting may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class AuthorizationError(Error):
    """The caller is not authenticated, or its roles do not allow the action."""

    def __init__(self, message: str, *, authenticated: bool = True) -> None:
        super().__init__(message)
        self.authenticated = authenticated


class NotFoundError(Error):
    """The named object does not exist, or does not exist yet."""


class ConfigurationError(Error):
    """Local settings, flags or files given to veil are wrong."""


class EnvironmentFailure(Error):  # noqa: N818 - 'EnvironmentError' is a builtin alias of OSError
    """The environment (network, disk) failed; retrying later may help."""


class NetworkError(EnvironmentFailure):
    """A peer could not be reached or the connection broke."""


class StorageError(EnvironmentFailure):
    """The store could not be read, written or unsealed."""
