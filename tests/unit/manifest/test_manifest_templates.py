"""Templates render every encoder and path kind, reject faults and never re-evaluate values."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from veil.errors import ManifestError
from veil.manifest import (
    FileValue,
    Manifest,
    Marble,
    Parameters,
    SecretValue,
    TemplateContext,
    check_templates,
    referenced_secrets,
    render_parameters,
)

Doc = dict[str, Any]
KEY = bytes(range(16))


def _cert_value(common_name: str) -> tuple[SecretValue, dict[str, bytes]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    value = SecretValue(
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        public_der=key.public_key().public_bytes(serialization.Encoding.DER, spki),
        private_der=key.private_bytes(serialization.Encoding.DER, pkcs8, none),
    )
    pems = {
        "Cert": cert.public_bytes(serialization.Encoding.PEM),
        "Public": key.public_key().public_bytes(serialization.Encoding.PEM, spki),
        "Private": key.private_bytes(serialization.Encoding.PEM, pkcs8, none),
    }
    return value, pems


CERT, CERT_PEM = _cert_value("secret")
MARBLE, MARBLE_PEM = _cert_value("marble")
ROOT, ROOT_PEM = _cert_value("root")
CONTEXT = TemplateContext(
    secrets={"k": SecretValue(key=KEY), "c": CERT, "p": SecretValue(key=b"hunter2")},
    marblerun={
        "RootCA": ROOT,
        "MarbleCert": MARBLE,
        "CoordinatorRoot": ROOT,
        "CoordinatorIntermediate": ROOT,
    },
    previous={"k": SecretValue(key=b"\xff" * 16)},
)


@pytest.fixture
def make_marble(make_doc: Callable[[], Doc]) -> Callable[..., Marble]:
    """Factory: marble m of a valid manifest with secrets k (AES), c (ECDSA cert), p (plain)."""

    def make(files: dict[str, Any] | None = None, env: dict[str, Any] | None = None) -> Marble:
        doc = make_doc()
        doc["Secrets"] = {
            "k": {"Type": "symmetric-key", "Size": 128, "Shared": True},
            "c": {"Type": "cert-ecdsa", "Size": 256},
            "p": {"Type": "plain", "UserDefined": True},
        }
        doc["Marbles"]["m"]["Parameters"].update(Files=files or {}, Env=env or {})
        return Manifest(doc).marbles["m"]

    return make


def _file(make_marble: Callable[..., Marble], template: str) -> bytes:
    return render_parameters(make_marble(files={"/f": template}), CONTEXT).files["/f"]


def _env(make_marble: Callable[..., Marble], template: str) -> bytes:
    return render_parameters(make_marble(env={"E": template}), CONTEXT).env["E"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("{{ pem .Secrets.c.Cert }}", CERT_PEM["Cert"], id="pem-cert"),
        pytest.param("{{ pem .Secrets.c.Public }}", CERT_PEM["Public"], id="pem-public"),
        pytest.param("{{ pem .Secrets.c.Private }}", CERT_PEM["Private"], id="pem-private"),
        pytest.param("{{ pem .Secrets.c }}", CERT_PEM["Cert"], id="pem-whole-cert-secret"),
        pytest.param("{{ raw .Secrets.k }}", KEY, id="raw-symmetric"),
        pytest.param("{{ raw .Secrets.c }}", CERT.public_der, id="raw-whole-cert-is-public-key"),
        pytest.param("{{ raw .Secrets.c.Cert }}", CERT.cert_der, id="raw-cert"),
        pytest.param("{{ raw .Secrets.c.Private }}", CERT.private_der, id="raw-private"),
        pytest.param("{{ hex .Secrets.k }}", KEY.hex().encode(), id="hex"),
        pytest.param("{{ base64 .Secrets.k }}", base64.b64encode(KEY), id="base64"),
        pytest.param(
            "{{ base64 .Secrets.c.Cert }}", base64.b64encode(CERT.cert_der or b""), id="b64-cert"
        ),
        pytest.param("{{ pem .MarbleRun.MarbleCert.Cert }}", MARBLE_PEM["Cert"], id="marble-cert"),
        pytest.param(
            "{{ pem .MarbleRun.MarbleCert.Private }}", MARBLE_PEM["Private"], id="marble-key"
        ),
        pytest.param("{{ pem .MarbleRun.RootCA.Cert }}", ROOT_PEM["Cert"], id="root-ca"),
        pytest.param(
            "{{ pem .MarbleRun.CoordinatorRoot }}", ROOT_PEM["Cert"], id="coordinator-root"
        ),
        pytest.param("{{ raw .Previous.Secrets.k }}", b"\xff" * 16, id="previous"),
        pytest.param("a {{raw .Secrets.k}} b", b"a " + KEY + b" b", id="no-inner-spaces"),
        pytest.param("a \n {{- raw .Secrets.k -}} \n b", b"a" + KEY + b"b", id="trim-markers"),
        pytest.param(
            "{{ hex .Secrets.k }}{{ hex .Secrets.k }}", KEY.hex().encode() * 2, id="adjacent"
        ),
        pytest.param("no actions }} here", b"no actions }} here", id="plain-text"),
    ],
)
def test_file_templates_render(
    make_marble: Callable[..., Marble], template: str, expected: bytes
) -> None:
    """Each encoder and path kind renders the expected bytes into a file."""
    assert _file(make_marble, template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        pytest.param("KEY={{ string .Secrets.p }}", b"KEY=hunter2", id="string-plain"),
        pytest.param(
            "{{ hex .Secrets.c.Public }}", (CERT.public_der or b"").hex().encode(), id="hex"
        ),
        pytest.param("{{ pem .Secrets.c.Cert }}", CERT_PEM["Cert"], id="pem"),
    ],
)
def test_env_templates_render(
    make_marble: Callable[..., Marble], template: str, expected: bytes
) -> None:
    """Env values render with pem, hex, string and base64."""
    assert _env(make_marble, template) == expected


def test_no_templates_values_are_verbatim(make_marble: Callable[..., Marble]) -> None:
    """Files and Env with NoTemplates are copied verbatim, braces and all."""
    literal = "{{ this is not a template }}"
    marble = make_marble(
        files={"/f": {"Data": literal, "NoTemplates": True}},
        env={
            "E": {
                "Data": base64.b64encode(literal.encode()).decode(),
                "Encoding": "base64",
                "NoTemplates": True,
            }
        },
    )
    rendered = render_parameters(marble, CONTEXT)
    assert rendered.files["/f"] == rendered.env["E"] == literal.encode()
    assert rendered.argv == ("./m",)


def test_secret_values_are_never_re_evaluated(make_marble: Callable[..., Marble]) -> None:
    """A secret value that contains template syntax is inserted literally, not evaluated."""
    evil = b"{{ pem .MarbleRun.MarbleCert.Private }}"
    context = TemplateContext(secrets={"p": SecretValue(key=evil)}, marblerun=CONTEXT.marblerun)
    marble = make_marble(
        env={"E": "{{ string .Secrets.p }}"}, files={"/f": "x{{ hex .Secrets.p }}"}
    )
    rendered = render_parameters(marble, context)
    assert rendered.env["E"] == evil
    assert rendered.files["/f"] == b"x" + evil.hex().encode()


def test_binary_file_data_with_templates(make_marble: Callable[..., Marble]) -> None:
    """Templates also run inside base64-encoded binary data, around non-UTF-8 bytes."""
    data = b"\xff\x00" + b"{{ raw .Secrets.k }}" + b"\xfe"
    marble = make_marble(
        files={"/f": {"Data": base64.b64encode(data).decode(), "Encoding": "base64"}}
    )
    assert render_parameters(marble, CONTEXT).files["/f"] == b"\xff\x00" + KEY + b"\xfe"


@pytest.mark.parametrize(
    ("where", "template", "context", "fragment"),
    [
        pytest.param(
            "env", "{{ base64 .Secrets.k }}", TemplateContext({}, {}), "not available", id="unset"
        ),
        pytest.param(
            "files",
            "{{ raw .Secrets.c.Cert }}",
            TemplateContext({"c": SecretValue(key=KEY)}, {}),
            "no Cert",
            id="missing-field",
        ),
        pytest.param(
            "env",
            "{{ string .Secrets.p }}",
            TemplateContext({"p": SecretValue(key=b"a\x00b")}, {}),
            "NUL",
            id="nul",
        ),
        pytest.param(
            "env",
            "{{ string .Secrets.p }}",
            TemplateContext({"p": CERT}, {}),
            "plain",
            id="string-on-cert",
        ),
        pytest.param(
            "files",
            "{{ raw .Secrets.k }}",
            TemplateContext({"k": SecretValue(key=b"")}, {}),
            "empty",
            id="empty",
        ),
        pytest.param(
            "files",
            "{{ pem .Secrets.c }}",
            TemplateContext({"c": SecretValue(key=KEY)}, {}),
            "pem",
            id="pem-key",
        ),
        pytest.param(
            "files",
            "{{ raw .Previous.Secrets.k }}",
            TemplateContext({}, {}),
            "previous",
            id="no-prev",
        ),
    ],
)
def test_render_errors_name_the_location(
    make_marble: Callable[..., Marble],
    where: str,
    template: str,
    context: TemplateContext,
    fragment: str,
) -> None:
    """A render-time fault raises ManifestError naming the marble, field and action."""
    if where == "env":
        marble, path = make_marble(env={"E": template}), "Marbles.m.Parameters.Env.E"
    else:
        marble, path = make_marble(files={"/f": template}), "Marbles.m.Parameters.Files./f"
    with pytest.raises(ManifestError, match=fragment) as info:
        render_parameters(marble, context)
    assert info.value.path == path
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "template", "fragment"),
    [
        pytest.param("Files", "{{ sha256 .Secrets.k }}", "unknown function", id="unknown-function"),
        pytest.param("Files", "{{ raw .Secrets }}", "not a supported path", id="no-name"),
        pytest.param("Files", "{{ raw .Other.k }}", "unknown root", id="bad-root"),
        pytest.param("Files", "{{ raw .Secrets.k.Key }}", "only .Cert", id="bad-attribute"),
        pytest.param("Files", "{{ raw .Secrets.k.Cert.Raw }}", "only .Cert", id="too-deep"),
        pytest.param("Files", "{{ raw .MarbleRun.Root }}", "unknown value", id="bad-marblerun"),
        pytest.param("Files", "{{ raw .Previous.k }}", "Previous", id="previous-without-secrets"),
        pytest.param("Files", "{{ .Secrets.k | raw }}", "not supported", id="pipeline"),
        pytest.param("Files", "{{ raw .Secrets.k", "never closed", id="unclosed"),
        pytest.param("Files", "{{ raw .Secrets.ké }}", "ASCII", id="non-ascii"),
        pytest.param(
            "Files", "{{ string .Secrets.p }}", "not allowed in Files", id="string-in-files"
        ),
        pytest.param("Env", "{{ raw .Secrets.k }}", "not allowed in Env", id="raw-in-env"),
        pytest.param("Files", "{{ raw .Secrets.undefined }}", "no secret named", id="undefined"),
        pytest.param(
            "Files", "{{ raw .Previous.Secrets.undefined }}", "no secret named", id="undefined-prev"
        ),
        pytest.param("Files", "{{ pem .Secrets.k }}", "pem cannot", id="pem-symmetric"),
        pytest.param(
            "Files", "{{ raw .Secrets.k.Private }}", "has no .Private", id="symmetric-attr"
        ),
        pytest.param("Env", "{{ string .Secrets.k }}", "whole plain", id="string-symmetric"),
        pytest.param("Env", "{{ string .Secrets.c.Cert }}", "whole plain", id="string-cert"),
        pytest.param("Env", "{{ string .MarbleRun.RootCA }}", "plain", id="string-marblerun"),
        pytest.param(
            "Files", "{{ pem .MarbleRun.RootCA.Private }}", "no .Private", id="root-private"
        ),
        pytest.param(
            "Files",
            "{{ raw .MarbleRun.CoordinatorIntermediate.Private }}",
            "no .Private",
            id="ica-key",
        ),
    ],
)
def test_manifest_rejects_bad_templates(
    make_marble: Callable[..., Marble], field: str, template: str, fragment: str
) -> None:
    """The dry run on manifest construction rejects invalid templates, naming the value's path."""
    key = "E" if field == "Env" else "/f"
    with pytest.raises(ManifestError, match=fragment) as info:
        make_marble(**{field.lower(): {key: template}})
    assert info.value.path == f"Marbles.m.Parameters.{field}.{key}"


def test_check_templates_accepts_a_valid_manifest(
    make_marble: Callable[..., Marble], make_doc: Callable[[], Doc]
) -> None:
    """check_templates passes on a manifest that parsed, since parsing already ran it."""
    doc = make_doc()
    doc["Marbles"]["m"]["Parameters"]["Files"] = {"/ca": "{{ pem .MarbleRun.RootCA.Cert }}"}
    check_templates(Manifest(doc))


def test_referenced_secrets(make_marble: Callable[..., Marble]) -> None:
    """referenced_secrets lists .Secrets and .Previous.Secrets names, not MarbleRun values."""
    marble = make_marble(
        files={
            "/a": "{{ raw .Secrets.k }}{{ pem .MarbleRun.RootCA.Cert }}",
            "/b": {"Data": "{{ raw .Secrets.undefined }}", "NoTemplates": True},
        },
        env={"E": "{{ pem .Secrets.c.Cert }} {{ hex .Previous.Secrets.k }}"},
    )
    assert referenced_secrets(marble) == frozenset({"k", "c"})


def test_standalone_marble_renders_with_relative_paths() -> None:
    """A Marble built directly renders, and its errors use paths relative to Parameters."""
    marble = Marble(
        package="pkg",
        parameters=Parameters(env={"X": FileValue(data=b"{{ hex .Secrets.zz }}")}, argv=("a", "b")),
    )
    with pytest.raises(ManifestError) as info:
        render_parameters(marble, CONTEXT)
    assert info.value.path == "Parameters.Env.X"
    assert render_parameters(Marble(package="pkg"), CONTEXT).files == {}


def test_secret_value_repr_hides_private_material() -> None:
    """SecretValue's repr never shows private keys or symmetric key bytes."""
    text = repr(SecretValue(key=b"topsecret", private_der=b"privkey"))
    assert "topsecret" not in text
    assert "privkey" not in text
