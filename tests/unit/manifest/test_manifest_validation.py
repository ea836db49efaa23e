"""Each validation rule rejects a failing example with the JSON path of the offending field."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from veil.errors import ManifestError
from veil.manifest import Manifest, Package, SecretSpec, TLSIncoming

from .conftest import SIGNER_ID, UNIQUE_ID

Doc = dict[str, Any]
Mutation = Callable[[Doc], object]


@functools.cache
def _cert(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@functools.cache
def _rsa_pem(bits: int, seed: int = 0) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _pkg(doc: Doc, **fields: object) -> None:
    doc["Packages"]["pkg"] = fields


def _marble(doc: Doc) -> Doc:
    marble: Doc = doc["Marbles"]["m"]
    return marble


def _params(doc: Doc) -> Doc:
    params: Doc = _marble(doc)["Parameters"]
    return params


def _secret(doc: Doc, **fields: object) -> None:
    doc.setdefault("Secrets", {})["s"] = fields


def _role(doc: Doc, **fields: object) -> None:
    doc.setdefault("Roles", {})["r"] = fields


def _user(doc: Doc, name: str = "u", *roles: str, cert: str = "alice") -> None:
    doc.setdefault("Users", {})[name] = {"Certificate": _cert(cert), "Roles": list(roles)}


def _tls(doc: Doc, **fields: object) -> None:
    doc["TLS"] = {"t": fields}


PACKAGE_CASES = [
    pytest.param(lambda d: d.update(Packages={}), "Packages", id="no-packages"),
    pytest.param(lambda d: d.update(Marbles={}), "Marbles", id="no-marbles"),
    pytest.param(
        lambda d: _marble(d).update(Package="nope"), "Marbles.m.Package", id="undefined-package"
    ),
    pytest.param(
        lambda d: _marble(d).pop("Package"), "Marbles.m.Package", id="marble-without-package"
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, SignerID=SIGNER_ID),
        "Packages.pkg.UniqueID",
        id="unique-and-signer",
    ),
    pytest.param(_pkg, "Packages.pkg.SignerID", id="no-identity"),
    pytest.param(
        lambda d: _pkg(d, SignerID=SIGNER_ID, SecurityVersion=1),
        "Packages.pkg.ProductID",
        id="signer-without-product",
    ),
    pytest.param(
        lambda d: _pkg(d, SignerID=SIGNER_ID, ProductID=1),
        "Packages.pkg.SecurityVersion",
        id="signer-without-svn",
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID="<mrenclave>"), "Packages.pkg.UniqueID", id="placeholder"
    ),
    pytest.param(lambda d: _pkg(d, UniqueID="ab" * 31), "Packages.pkg.UniqueID", id="short-hex"),
    pytest.param(
        lambda d: _pkg(d, SignerID="zz" * 32, ProductID=1, SecurityVersion=1),
        "Packages.pkg.SignerID",
        id="signer-not-hex",
    ),
    pytest.param(
        lambda d: _pkg(d, SignerID=SIGNER_ID, ProductID=-1, SecurityVersion=1),
        "Packages.pkg.ProductID",
        id="negative-product",
    ),
    pytest.param(
        lambda d: _pkg(d, SignerID=SIGNER_ID, ProductID="1", SecurityVersion=1),
        "Packages.pkg.ProductID",
        id="product-as-string",
    ),
    pytest.param(
        lambda d: _pkg(d, SignerID=SIGNER_ID, ProductID=1.0, SecurityVersion=1),
        "Packages.pkg.ProductID",
        id="product-as-float",
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, Debug="yes"),
        "Packages.pkg.Debug",
        id="debug-not-bool",
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, AcceptedTCBStatuses=["Revoked"]),
        "Packages.pkg.AcceptedTCBStatuses[0]",
        id="unknown-tcb-status",
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, AcceptedAdvisories=[""]),
        "Packages.pkg.AcceptedAdvisories[0]",
        id="empty-advisory",
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, TEE="sgx2"), "Packages.pkg.TEE", id="unknown-tee"
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, Foo=1), "Packages.pkg.Foo", id="unknown-field"
    ),
    pytest.param(
        lambda d: _pkg(d, UniqueID=UNIQUE_ID, uniqueid=UNIQUE_ID),
        "Packages.pkg.uniqueid",
        id="case-duplicate",
    ),
    pytest.param(lambda d: d.update(Clients={}), "Clients", id="unknown-top-level"),
    pytest.param(lambda d: d.update(Packages=[]), "Packages", id="packages-not-object"),
]

MARBLE_CASES = [
    pytest.param(
        lambda d: _marble(d).update(TLS=["web"]), "Marbles.m.TLS[0]", id="undefined-tls-tag"
    ),
    pytest.param(
        lambda d: _marble(d).update(MaxActivations=-1),
        "Marbles.m.MaxActivations",
        id="negative-max",
    ),
    pytest.param(
        lambda d: _params(d).update(Env={"X": {"Data": "AA==", "Encoding": "base64"}}),
        "Marbles.m.Parameters.Env.X",
        id="env-nul",
    ),
    pytest.param(
        lambda d: _params(d).update(Env={"A=B": "x"}), "Marbles.m.Parameters.Env.A=B", id="env-name"
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": {"Data": "x", "Encoding": "rot13"}}),
        "Marbles.m.Parameters.Files./a.Encoding",
        id="unknown-encoding",
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": {"Data": "!!", "Encoding": "base64"}}),
        "Marbles.m.Parameters.Files./a.Data",
        id="bad-base64",
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": {"Data": "0g", "Encoding": "hex"}}),
        "Marbles.m.Parameters.Files./a.Data",
        id="bad-hex",
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": 5}),
        "Marbles.m.Parameters.Files./a",
        id="file-number",
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": {"Data": "x", "Mode": 420}}),
        "Marbles.m.Parameters.Files./a.Mode",
        id="file-unknown-field",
    ),
    pytest.param(
        lambda d: _params(d).update(Argv="./m"), "Marbles.m.Parameters.Argv", id="argv-not-list"
    ),
    pytest.param(
        lambda d: _params(d).update(Argv=["./m", 3]), "Marbles.m.Parameters.Argv[1]", id="argv-item"
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": "{{ pem .Secrets.nope.Cert }}"}),
        "Marbles.m.Parameters.Files./a",
        id="template-undefined-secret",
    ),
    pytest.param(
        lambda d: _params(d).update(Files={"/a": "{{ raw .Secrets.s"}),
        "Marbles.m.Parameters.Files./a",
        id="template-unclosed",
    ),
    pytest.param(
        lambda d: _marble(d).update(Parameter={}), "Marbles.m.Parameter", id="marble-unknown-field"
    ),
]

SECRET_CASES = [
    pytest.param(lambda d: _secret(d, Type="aes"), "Secrets.s.Type", id="unknown-type"),
    pytest.param(lambda d: _secret(d, Size=128), "Secrets.s.Type", id="missing-type"),
    pytest.param(
        lambda d: _secret(d, Type="symmetric-key"), "Secrets.s.Size", id="symmetric-no-size"
    ),
    pytest.param(
        lambda d: _secret(d, Type="symmetric-key", Size=12),
        "Secrets.s.Size",
        id="symmetric-odd-size",
    ),
    pytest.param(
        lambda d: _secret(d, Type="cert-ecdsa", Size=255), "Secrets.s.Size", id="ecdsa-size"
    ),
    pytest.param(lambda d: _secret(d, Type="cert-ecdsa"), "Secrets.s.Size", id="ecdsa-no-size"),
    pytest.param(
        lambda d: _secret(d, Type="cert-ed25519", Size=256), "Secrets.s.Size", id="ed25519-size"
    ),
    pytest.param(
        lambda d: _secret(d, Type="cert-rsa", Size=1024), "Secrets.s.Size", id="rsa-small"
    ),
    pytest.param(
        lambda d: _secret(
            d, Type="cert-rsa", Size=2048, ValidFor=7, Cert={"NotAfter": "2030-01-01T00:00:00Z"}
        ),
        "Secrets.s.ValidFor",
        id="validfor-and-notafter",
    ),
    pytest.param(
        lambda d: _secret(d, Type="cert-ed25519", Cert={"NotAfter": "next year"}),
        "Secrets.s.Cert.NotAfter",
        id="bad-notafter",
    ),
    pytest.param(
        lambda d: _secret(d, Type="plain", Private="AAAA"),
        "Secrets.s.Private",
        id="private-in-manifest",
    ),
    pytest.param(
        lambda d: _secret(d, Type="plain", Shared=1), "Secrets.s.Shared", id="shared-not-bool"
    ),
]

ACCESS_CASES = [
    pytest.param(lambda d: _user(d, "u", "ghost"), "Users.u.Roles[0]", id="undefined-role"),
    pytest.param(
        lambda d: (_user(d, "a", cert="same"), _user(d, "b", cert="same")),
        "Users.b.Certificate",
        id="duplicate-certificate",
    ),
    pytest.param(
        lambda d: d.update(Users={"u": {"Certificate": ""}}),
        "Users.u.Certificate",
        id="no-certificate",
    ),
    pytest.param(
        lambda d: d.update(Users={"u": {"Certificate": "cert-alice"}}),
        "Users.u.Certificate",
        id="certificate-not-pem",
    ),
    pytest.param(
        lambda d: _role(d, ResourceType="Marbles", Actions=[]),
        "Roles.r.ResourceType",
        id="bad-type",
    ),
    pytest.param(
        lambda d: _role(d, ResourceType="Packages", ResourceNames=["pkg"], Actions=["Delete"]),
        "Roles.r.Actions[0]",
        id="unknown-action",
    ),
    pytest.param(
        lambda d: _role(d, ResourceType="Packages", ResourceNames=["pkg"], Actions=["ReadSecret"]),
        "Roles.r.Actions[0]",
        id="action-of-other-type",
    ),
    pytest.param(
        lambda d: _role(
            d, ResourceType="Manifest", ResourceNames=["pkg"], Actions=["UpdateManifest"]
        ),
        "Roles.r.ResourceNames",
        id="manifest-role-with-names",
    ),
    pytest.param(
        lambda d: _role(d, ResourceType="Packages", ResourceNames=["x"], Actions=[]),
        "Roles.r.ResourceNames[0]",
        id="undefined-package",
    ),
    pytest.param(
        lambda d: _role(d, ResourceType="Secrets", ResourceNames=["x"], Actions=["ReadSecret"]),
        "Roles.r.ResourceNames[0]",
        id="undefined-secret",
    ),
    pytest.param(
        lambda d: (
            _secret(d, Type="symmetric-key", Size=128, Shared=True),
            _role(d, ResourceType="Secrets", ResourceNames=["s"], Actions=["WriteSecret"]),
        ),
        "Roles.r.ResourceNames[0]",
        id="write-generated-secret",
    ),
    pytest.param(
        lambda d: (
            _secret(d, Type="symmetric-key", Size=128),
            _role(d, ResourceType="Secrets", ResourceNames=["s"], Actions=["readsecret"]),
        ),
        "Roles.r.ResourceNames[0]",
        id="read-per-marble-secret",
    ),
]

CONFIG_CASES = [
    pytest.param(
        lambda d: d.update(Config={"SealMode": "Sealed"}), "Config.SealMode", id="seal-mode"
    ),
    pytest.param(
        lambda d: d.update(Config={"FeatureGates": ["Turbo"]}), "Config.FeatureGates[0]", id="gate"
    ),
    pytest.param(
        lambda d: d.update(Config={"UpdateThreshold": 1}), "Config.UpdateThreshold", id="threshold"
    ),
    pytest.param(
        lambda d: d.update(Config={"RecoveryThreshold": 1}),
        "Config.RecoveryThreshold",
        id="one-of-n",
    ),
    pytest.param(
        lambda d: d.update(RecoveryKeys={"a": _rsa_pem(2048)}, Config={"RecoveryThreshold": 2}),
        "Config.RecoveryThreshold",
        id="more-than-keys",
    ),
    pytest.param(lambda d: d.update(RecoveryKeys={"k": ""}), "RecoveryKeys.k", id="empty-key"),
    pytest.param(
        lambda d: d.update(RecoveryKeys={"k": _cert("not-a-key")}),
        "RecoveryKeys.k",
        id="cert-as-key",
    ),
    pytest.param(
        lambda d: d.update(RecoveryKeys={"k": _rsa_pem(1024)}), "RecoveryKeys.k", id="small-key"
    ),
    pytest.param(
        lambda d: d.update(RecoveryKeys={"a": _rsa_pem(2048), "b": _rsa_pem(2048)}),
        "RecoveryKeys.b",
        id="duplicate-key",
    ),
]

TLS_CASES = [
    pytest.param(
        lambda d: _tls(d, Incoming=[{"Port": "8443", "Cert": "nope", "DisableClientAuth": True}]),
        "TLS.t.Incoming[0].Cert",
        id="undefined-cert",
    ),
    pytest.param(
        lambda d: (
            _secret(d, Type="symmetric-key", Size=128),
            _tls(d, Incoming=[{"Port": "8443", "Cert": "s", "DisableClientAuth": True}]),
        ),
        "TLS.t.Incoming[0].Cert",
        id="cert-not-certificate",
    ),
    pytest.param(
        lambda d: _tls(d, Incoming=[{"Port": "8443", "Cert": "s"}]),
        "TLS.t.Incoming[0].DisableClientAuth",
        id="cert-with-client-auth",
    ),
    pytest.param(
        lambda d: _tls(d, Incoming=[{"Port": "8443", "DisableClientAuth": True}]),
        "TLS.t.Incoming[0].DisableClientAuth",
        id="no-client-auth-without-cert",
    ),
    pytest.param(
        lambda d: _tls(d, Incoming=[{"Port": ""}]), "TLS.t.Incoming[0].Port", id="incoming-no-port"
    ),
    pytest.param(
        lambda d: _tls(d, Outgoing=[{"Addr": "db", "Port": "http"}]),
        "TLS.t.Outgoing[0].Port",
        id="outgoing-bad-port",
    ),
    pytest.param(
        lambda d: _tls(d, Outgoing=[{"Port": "5432"}]),
        "TLS.t.Outgoing[0].Addr",
        id="outgoing-no-addr",
    ),
    pytest.param(
        lambda d: _tls(d, Outgoing=[{"Addr": "db", "Port": "5432", "Cert": "s"}]),
        "TLS.t.Outgoing[0].Cert",
        id="outgoing-cert",
    ),
    pytest.param(
        lambda d: d.update(Infrastructures={"i": {"CPUSVN": "AAAA"}}),
        "Infrastructures.i.CPUSVN",
        id="cpusvn-length",
    ),
    pytest.param(
        lambda d: d.update(Infrastructures={"i": {"QESVN": 70000}}),
        "Infrastructures.i.QESVN",
        id="qesvn-range",
    ),
]


@pytest.mark.parametrize(("mutate", "path"), PACKAGE_CASES)
def test_package_and_structure_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A package or top-level structure that breaks a rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


@pytest.mark.parametrize(("mutate", "path"), MARBLE_CASES)
def test_marble_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A marble that breaks a rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


@pytest.mark.parametrize(("mutate", "path"), SECRET_CASES)
def test_secret_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A secret that breaks a type, size or validity rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


@pytest.mark.parametrize(("mutate", "path"), ACCESS_CASES)
def test_user_and_role_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A user or role that breaks a rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


@pytest.mark.parametrize(("mutate", "path"), CONFIG_CASES)
def test_config_and_recovery_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A config or recovery key that breaks a rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


@pytest.mark.parametrize(("mutate", "path"), TLS_CASES)
def test_tls_and_infrastructure_rules(
    make_doc: Callable[[], Doc],
    rejects: Callable[[Doc, str], ManifestError],
    mutate: Mutation,
    path: str,
) -> None:
    """A TLS tag or infrastructure that breaks a rule is rejected at its path."""
    doc = make_doc()
    mutate(doc)
    rejects(doc, path)


def test_unknown_field_is_named(
    make_doc: Callable[[], Doc], rejects: Callable[[Doc, str], ManifestError]
) -> None:
    """An unknown field's error names the field and its full path."""
    doc = make_doc()
    _params(doc)["Envs"] = {}
    error = rejects(doc, "Marbles.m.Parameters.Envs")
    assert "'Envs'" in str(error)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"{", "not valid JSON", id="truncated"),
        pytest.param(b"[]", "JSON object", id="array"),
        pytest.param(b'{"Packages": {}, "Packages": {}}', "twice", id="duplicate-key"),
        pytest.param(b'{"Packages": NaN}', "NaN", id="nan"),
        pytest.param(b'{"Packages": "\xff"}', "UTF-8", id="not-utf8"),
        pytest.param(b"\xef\xbb\xbf{}", "not valid JSON", id="bom"),
    ],
)
def test_bad_json_is_rejected(data: bytes, fragment: str) -> None:
    """Input that is not strict UTF-8 JSON with unique keys is rejected with a clear message."""
    with pytest.raises(ManifestError, match=fragment):
        Manifest.from_json(data)


def test_keys_match_fields_case_insensitively(
    make_doc: Callable[[], Doc], load: Callable[[Doc], Manifest]
) -> None:
    """Lower-case keys such as "uniqueid" are accepted like Go's encoding/json does."""
    doc = make_doc()
    doc["packages"] = {"pkg": {"uniqueid": UNIQUE_ID.upper(), "tee": "tdx"}}
    del doc["Packages"]
    package = load(doc).packages["pkg"]
    assert package.unique_id == UNIQUE_ID
    assert package.tee == "tdx"


def test_null_means_absent(make_doc: Callable[[], Doc], load: Callable[[Doc], Manifest]) -> None:
    """A JSON null leaves a field at its default, as Go's encoding/json does."""
    doc = make_doc()
    doc["Secrets"] = None
    doc["Packages"]["pkg"]["ProductID"] = None
    manifest = load(doc)
    assert manifest.secrets == {}
    assert manifest.packages["pkg"].product_id is None


def test_debug_relaxes_identity_rules(
    make_doc: Callable[[], Doc], load: Callable[[Doc], Manifest]
) -> None:
    """A Debug package may mix or omit identity fields and use placeholders, as in MarbleRun."""
    doc = make_doc()
    doc["Packages"]["pkg"] = {"Debug": True, "UniqueID": "<x>", "SignerID": SIGNER_ID}
    doc["Packages"]["other"] = {"Debug": True}
    manifest = load(doc)
    assert manifest.packages["pkg"].signer_id == SIGNER_ID
    assert manifest.packages["other"].accepted_tcb_statuses == ("UpToDate", "SWHardeningNeeded")


def test_defaults_and_full_manifest(
    make_doc: Callable[[], Doc], load: Callable[[Doc], Manifest]
) -> None:
    """A manifest using every section parses into the typed fields with MarbleRun's defaults."""
    doc = make_doc()
    doc["Secrets"] = {
        "tls": {
            "Type": "cert-ecdsa",
            "Size": 256,
            "Shared": True,
            "Cert": {"Subject": {"CommonName": "x"}},
        },
        "key": {"Type": "symmetric-key", "Size": 256, "UserDefined": True},
        "up": {"Type": "cert-rsa", "UserDefined": True},
    }
    doc["TLS"] = {
        "web": {
            "Outgoing": [{"Addr": "db", "Port": "5432"}],
            "Incoming": [
                {"Port": "8443", "Cert": "tls", "DisableClientAuth": True},
                {"Port": "9000"},
            ],
        }
    }
    _marble(doc)["TLS"] = ["web"]
    doc["Infrastructures"] = {
        "azure": {"CPUSVN": "AAAAAAAAAAAAAAAAAAAAAA==", "QESVN": 2, "PCESVN": 3}
    }
    doc["RecoveryKeys"] = {"a": _rsa_pem(2048), "b": _rsa_pem(2048, 1)}
    doc["Users"] = {"admin": {"Certificate": _cert("admin"), "Roles": ["updater"]}}
    doc["Roles"] = {"updater": {"ResourceType": "Manifest", "Actions": ["UpdateManifest"]}}
    doc["Config"] = {"UpdateThreshold": 1, "RecoveryThreshold": 2, "SealMode": "UniqueKey"}
    manifest = load(doc)
    assert manifest.config.seal_mode == "UniqueKey"
    assert manifest.tls["web"].incoming[0].cert == "tls"
    assert manifest.infrastructures["azure"].cpu_svn == bytes(16)
    assert manifest.secrets["tls"].cert == {"Subject": {"CommonName": "x"}}
    assert manifest.marbles["m"].max_activations == 0
    assert load(make_doc()).config.seal_mode == "ProductKey"


def test_rsa_keys_for_duplicate_case_are_distinct() -> None:
    """The recovery-key helper yields distinct keys for distinct seeds."""
    assert _rsa_pem(2048) != _rsa_pem(2048, 1)


def test_objects_validate_on_direct_construction() -> None:
    """Building a model object directly runs the same rules, with a path relative to it."""
    with pytest.raises(ManifestError) as info:
        Package(unique_id="zz")
    assert info.value.path == "UniqueID"
    with pytest.raises(ManifestError):
        SecretSpec(type="symmetric-key", size=7)
    with pytest.raises(ManifestError):
        TLSIncoming(port="70000")
    assert Package(unique_id=UNIQUE_ID.upper()).unique_id == UNIQUE_ID


def test_manifest_objects_are_frozen(
    make_doc: Callable[[], Doc], load: Callable[[Doc], Manifest]
) -> None:
    """A parsed manifest and its mappings cannot be modified."""
    manifest = load(make_doc())
    with pytest.raises(AttributeError):
        manifest.packages = {}  # type: ignore[misc]  # assigning to a frozen field is the point
    with pytest.raises(TypeError):
        manifest.marbles["x"] = manifest.marbles["m"]  # type: ignore[index]  # read-only mapping
