"""A safe subset of Go ``text/template`` for marble Files and Env, evaluated per activation.

Grammar (everything else is an error)::

    template := (text | action)*
    action   := "{{" ["- "] WS* encoder WS+ path WS* [" -"] "}}"
    encoder  := "pem" | "hex" | "raw" | "base64" | "string"
    path     := ".Secrets." NAME [attr]
              | ".Previous.Secrets." NAME [attr]
              | ".MarbleRun." MARBLERUN_VALUE [attr]
    MARBLERUN_VALUE := "RootCA" | "MarbleCert" | "CoordinatorRoot" | "CoordinatorIntermediate"
    attr     := ".Cert" | ".Public" | ".Private"

Templates are parsed once, as bytes; rendering concatenates text and encoded values in one pass,
so a secret value that itself contains ``{{ … }}`` is never evaluated again.
"""

from __future__ import annotations

import base64
import re
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from veil.errors import ManifestError

if TYPE_CHECKING:
    from veil.manifest._model import Manifest, Marble

__all__ = [
    "ENV_ENCODERS",
    "FILE_ENCODERS",
    "MARBLERUN_VALUES",
    "Action",
    "Node",
    "RenderedParameters",
    "SecretValue",
    "TemplateContext",
    "check_templates",
    "parse_template",
    "referenced_secrets",
    "render_parameters",
]

Encoder = Literal["pem", "hex", "raw", "base64", "string"]
Attr = Literal["Cert", "Public", "Private"]
FILE_ENCODERS: frozenset[str] = frozenset({"pem", "hex", "raw", "base64"})
ENV_ENCODERS: frozenset[str] = frozenset({"pem", "hex", "string", "base64"})
MARBLERUN_VALUES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "RootCA": frozenset({"Cert", "Public"}),
        "MarbleCert": frozenset({"Cert", "Public", "Private"}),
        "CoordinatorRoot": frozenset({"Cert", "Public"}),
        "CoordinatorIntermediate": frozenset({"Cert", "Public"}),
    }
)
Root = Literal["Secrets", "Previous", "MarbleRun"]
_ENCODERS: Mapping[str, Encoder] = MappingProxyType(
    {"pem": "pem", "hex": "hex", "raw": "raw", "base64": "base64", "string": "string"}
)
_ATTRS: Mapping[str, Attr] = MappingProxyType(
    {"Cert": "Cert", "Public": "Public", "Private": "Private"}
)
_ROOTS: Mapping[str, Root] = MappingProxyType(
    {"Secrets": "Secrets", "Previous": "Previous", "MarbleRun": "MarbleRun"}
)
_WS = b" \t\r\n"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Action:
    """One parsed ``{{ encoder path }}``; ``root`` is ``Secrets``, ``Previous`` or ``MarbleRun``."""

    encoder: Encoder
    root: Root
    name: str
    attr: Attr | None
    offset: int
    source: str

    def describe(self) -> str:
        """Where and what, for error messages: ``action '{{ raw .Secrets.k }}' at byte 3``."""
        return f"action '{{{{ {self.source} }}}}' at byte {self.offset}"


Node = bytes | Action


def _fail(message: str, offset: int) -> ManifestError:
    return ManifestError(f"template error at byte {offset}: {message}")


def _parse_path(text: str, offset: int) -> tuple[Root, str, Attr | None]:
    parts = text.split(".")
    if parts[0] != "" or len(parts) < 3 or not all(_NAME.match(p) for p in parts[1:]):
        raise _fail(
            f"{text!r} is not a supported path; use .Secrets.NAME, .Previous.Secrets.NAME or "
            ".MarbleRun.NAME, optionally followed by .Cert, .Public or .Private",
            offset,
        )
    segments = parts[1:]
    root = _ROOTS.get(segments[0])
    if root is None:
        raise _fail(
            f"{text!r}: unknown root .{segments[0]}; use .Secrets, .Previous or .MarbleRun", offset
        )
    if root == "Previous":
        if segments[1:2] != ["Secrets"] or len(segments) < 3:
            raise _fail(f"{text!r}: .Previous is only followed by .Secrets.NAME", offset)
        segments = segments[1:]
    name, rest = segments[1], segments[2:]
    if root == "MarbleRun" and name not in MARBLERUN_VALUES:
        raise _fail(
            f"{text!r}: unknown value .MarbleRun.{name}; use one of {', '.join(MARBLERUN_VALUES)}",
            offset,
        )
    if len(rest) > 1 or (rest and rest[0] not in _ATTRS):
        raise _fail(f"{text!r}: after the name only .Cert, .Public or .Private may follow", offset)
    return root, name, _ATTRS[rest[0]] if rest else None


def _parse_action(raw: bytes, offset: int) -> Action:
    try:
        source = raw.decode("ascii")
    except UnicodeDecodeError:
        raise _fail("an action may only contain ASCII characters", offset) from None
    tokens = source.split()
    if len(tokens) != 2:
        raise _fail(
            f"'{{{{{source}}}}}' is not supported; write {{{{ ENCODER PATH }}}} with one of "
            "pem, hex, raw, base64, string",
            offset,
        )
    encoder = _ENCODERS.get(tokens[0])
    if encoder is None:
        raise _fail(f"unknown function {tokens[0]!r}; use pem, hex, raw, base64 or string", offset)
    root, name, attr = _parse_path(tokens[1], offset)
    return Action(encoder, root, name, attr, offset, " ".join(tokens))


def parse_template(src: bytes) -> tuple[Node, ...]:
    """Parse template source into text and :class:`Action` nodes; raise on any syntax error."""
    nodes: list[Node] = []
    pos = 0
    pending = b""
    while True:
        start = src.find(b"{{", pos)
        if start < 0:
            pending += src[pos:]
            break
        text = src[pos:start]
        inner = start + 2
        if src[inner : inner + 1] == b"-" and src[inner + 1 : inner + 2] in (
            b" ",
            b"\t",
            b"\r",
            b"\n",
        ):
            text = text.rstrip(_WS)
            inner += 1
        end = src.find(b"}}", inner)
        if end < 0:
            raise _fail("'{{' is never closed by '}}'", start)
        inner_end = end
        trim_right = False
        if (
            end - 2 >= inner
            and src[end - 1 : end] == b"-"
            and src[end - 2 : end - 1]
            in (
                b" ",
                b"\t",
                b"\r",
                b"\n",
            )
        ):
            trim_right = True
            inner_end = end - 1
        pending += text
        if pending:
            nodes.append(pending)
            pending = b""
        nodes.append(_parse_action(src[inner:inner_end], start))
        pos = end + 2
        if trim_right:
            while pos < len(src) and src[pos : pos + 1] in (b" ", b"\t", b"\r", b"\n"):
                pos += 1
    if pending:
        nodes.append(pending)
    return tuple(nodes)


@dataclass(frozen=True)
class SecretValue:
    """The value of one secret at activation: DER certificate/keys, or raw bytes in ``key``.

    ``key`` holds a symmetric key or a plain secret. ``repr`` never shows private material.
    """

    cert_der: bytes | None = None
    public_der: bytes | None = None
    private_der: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)


def _empty() -> Mapping[str, SecretValue]:
    return MappingProxyType({})


@dataclass(frozen=True)
class TemplateContext:
    """What templates may read: ``.Secrets``, ``.MarbleRun`` (RootCA, MarbleCert,
    CoordinatorRoot, CoordinatorIntermediate) and ``.Previous.Secrets`` (before a root rotation)."""

    secrets: Mapping[str, SecretValue]
    marblerun: Mapping[str, SecretValue]
    previous: Mapping[str, SecretValue] = field(default_factory=_empty)


@dataclass(frozen=True)
class RenderedParameters:
    """A marble's Files and Env after template evaluation, and its Argv unchanged."""

    files: Mapping[str, bytes]
    env: Mapping[str, bytes]
    argv: tuple[str, ...]


def _pem(label: str, der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n".encode("ascii")


def _lookup(action: Action, context: TemplateContext) -> SecretValue:
    if action.root == "MarbleRun":
        table, what = context.marblerun, f"the MarbleRun value {action.name}"
    elif action.root == "Previous":
        table, what = context.previous, f"the previous value of secret {action.name!r}"
    else:
        table, what = context.secrets, f"secret {action.name!r}"
    value = table.get(action.name)
    if value is None:
        raise ManifestError(
            f"{action.describe()}: {what} is not available (not defined, not generated or not "
            "uploaded yet); set it before activating this marble"
        )
    return value


def _encode(action: Action, value: SecretValue) -> bytes:
    where = action.describe()
    label: str
    data: bytes | None
    if action.attr == "Cert":
        label, data = "CERTIFICATE", value.cert_der
    elif action.attr == "Public":
        label, data = "PUBLIC KEY", value.public_der
    elif action.attr == "Private":
        label, data = "PRIVATE KEY", value.private_der
    elif action.encoder == "pem":
        if value.cert_der is None:
            raise ManifestError(f"{where}: pem needs a certificate or key; this value has none")
        label, data = "CERTIFICATE", value.cert_der
    elif action.encoder == "string":
        if value.key is None or value.cert_der is not None:
            raise ManifestError(f"{where}: string can only encode a plain secret")
        label, data = "", value.key
    else:
        label, data = "", value.key if value.key is not None else value.public_der
    if action.encoder == "string" and action.attr is not None:
        raise ManifestError(f"{where}: string can only encode a whole plain secret")
    if data is None:
        raise ManifestError(f"{where}: the value has no {action.attr or 'key'} field")
    if not data:
        raise ManifestError(f"{where}: the value is empty")
    if action.encoder == "pem":
        return _pem(label, data)
    if action.encoder == "hex":
        return data.hex().encode("ascii")
    if action.encoder == "base64":
        return base64.b64encode(data)
    if action.encoder == "string" and b"\x00" in data:
        raise ManifestError(f"{where}: the plain secret contains a NUL byte; use hex or base64")
    return data


def _render(nodes: tuple[Node, ...], context: TemplateContext, path: str) -> bytes:
    out: list[bytes] = []
    for node in nodes:
        if isinstance(node, bytes):
            out.append(node)
            continue
        try:
            out.append(_encode(node, _lookup(node, context)))
        except ManifestError as exc:
            raise ManifestError(exc.message, path=path) from None
    return b"".join(out)


def _prefix(marble: Marble) -> str:
    return f"Marbles.{marble.name}.Parameters" if marble.name else "Parameters"


def render_parameters(marble: Marble, context: TemplateContext) -> RenderedParameters:
    """Evaluate a marble's Files and Env templates for one activation.

    Values with ``NoTemplates`` are copied verbatim. Raises :class:`~veil.errors.ManifestError`
    naming the template location (``Marbles.NAME.Parameters.Env.KEY``) for a missing secret or
    field, an encoder that does not fit the value, or an Env value that would contain NUL.
    """
    prefix = _prefix(marble)
    files: dict[str, bytes] = {}
    env: dict[str, bytes] = {}
    for name, value in marble.parameters.files.items():
        nodes = value._nodes
        files[name] = (
            value.data if nodes is None else _render(nodes, context, f"{prefix}.Files.{name}")
        )
    for name, value in marble.parameters.env.items():
        nodes = value._nodes
        where = f"{prefix}.Env.{name}"
        rendered = value.data if nodes is None else _render(nodes, context, where)
        if b"\x00" in rendered:
            raise ManifestError("the rendered value contains a NUL byte", path=where)
        env[name] = rendered
    return RenderedParameters(
        files=MappingProxyType(files), env=MappingProxyType(env), argv=marble.parameters.argv
    )


def _actions(marble: Marble) -> Iterator[tuple[str, Action]]:
    prefix = _prefix(marble)
    for kind, values in (("Files", marble.parameters.files), ("Env", marble.parameters.env)):
        for name, value in values.items():
            for node in value._nodes or ():
                if isinstance(node, Action):
                    yield f"{prefix}.{kind}.{name}", node


def referenced_secrets(marble: Marble) -> frozenset[str]:
    """Names of manifest secrets that the marble's templates read (``.Secrets.X`` and
    ``.Previous.Secrets.X``); values with ``NoTemplates`` are not templates and do not count."""
    return frozenset(a.name for _, a in _actions(marble) if a.root != "MarbleRun")


def _check_action(manifest: Manifest, action: Action) -> None:
    where = action.describe()
    if action.root == "MarbleRun":
        if action.attr is not None and action.attr not in MARBLERUN_VALUES[action.name]:
            raise ManifestError(
                f"{where}: .MarbleRun.{action.name} has no .{action.attr} available to marbles"
            )
        if action.encoder == "string":
            raise ManifestError(f"{where}: string only encodes plain secrets")
        return
    spec = manifest.secrets.get(action.name)
    if spec is None:
        raise ManifestError(f"{where}: the manifest defines no secret named {action.name!r}")
    if spec.type in ("symmetric-key", "plain"):
        if action.attr is not None:
            raise ManifestError(
                f"{where}: a {spec.type} secret has no .{action.attr}; use the secret itself"
            )
        if action.encoder == "pem":
            raise ManifestError(
                f"{where}: pem cannot encode a {spec.type} secret; use hex or base64"
            )
    if action.encoder == "string" and (spec.type != "plain" or action.attr is not None):
        raise ManifestError(f"{where}: string only encodes whole plain secrets")


def check_templates(manifest: Manifest) -> None:
    """Dry-run every template of the manifest: syntax, known secret names and fields, and an
    encoder that fits both the field (Files: pem hex raw base64; Env: pem hex string base64) and
    the secret type (``string`` only on plain secrets). Raises ``ManifestError`` on the first
    fault."""
    for marble in manifest.marbles.values():
        for path, action in _actions(marble):
            try:
                _check_action(manifest, action)
            except ManifestError as exc:
                raise ManifestError(exc.message, path=path) from None
