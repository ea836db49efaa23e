"""MarbleRun-compatible manifests: parse, validate, canonicalise, fingerprint and render templates.

This package is pure: it reads only the bytes and objects it is given. Everything invalid raises
:class:`veil.errors.ManifestError` whose ``path`` names the offending field, e.g.
``Marbles.tf-server.Package``.

>>> manifest = Manifest.from_json(data)          # doctest: +SKIP
>>> manifest.fingerprint()                        # doctest: +SKIP
'3f1c…'
"""

from veil.manifest._canonical import canonical_json
from veil.manifest._model import (
    DEFAULT_TCB_STATUSES,
    TEE,
    Config,
    FileValue,
    Infrastructure,
    Manifest,
    Marble,
    Package,
    Parameters,
    ResourceType,
    Role,
    SealMode,
    SecretSpec,
    SecretType,
    TLSIncoming,
    TLSOutgoing,
    TLSTag,
    User,
)
from veil.manifest._template import (
    RenderedParameters,
    SecretValue,
    TemplateContext,
    check_templates,
    referenced_secrets,
    render_parameters,
)

__all__ = [
    "DEFAULT_TCB_STATUSES",
    "TEE",
    "Config",
    "FileValue",
    "Infrastructure",
    "Manifest",
    "Marble",
    "Package",
    "Parameters",
    "RenderedParameters",
    "ResourceType",
    "Role",
    "SealMode",
    "SecretSpec",
    "SecretType",
    "SecretValue",
    "TLSIncoming",
    "TLSOutgoing",
    "TLSTag",
    "TemplateContext",
    "User",
    "canonical_json",
    "check_templates",
    "referenced_secrets",
    "render_parameters",
]
