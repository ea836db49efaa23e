"""Administrator commands on manifests: set, get, verify, signature, log and updates."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import click

from veil.cli._common import coordinator_option, handle_errors, out, read_file, with_user_cert
from veil.cli._trust import open_client, with_trust
from veil.errors import ManifestError
from veil.manifest import Manifest

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("manifest")
def manifest_group() -> None:
    """Administrator: set, get, verify and update manifests; read the update log."""


@manifest_group.command("set")
@click.argument("manifest_file", type=_FILE)
@coordinator_option
@with_trust
@click.option(
    "-r",
    "--recovery-secrets-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the encrypted recovery secrets (JSON, base64) to this file.",
)
@handle_errors
def manifest_set(
    manifest_file: Path, coordinator: str, recovery_secrets_out: Path | None, **trust: Any
) -> None:
    """Set MANIFEST_FILE on a verified coordinator."""
    raw = read_file(manifest_file, "manifest")
    with open_client(coordinator, **trust) as c:
        secrets = c.set_manifest(raw)
    out.print(f"manifest set; fingerprint {Manifest.from_json(raw).fingerprint()}")
    if secrets:
        doc = {k: base64.b64encode(v).decode() for k, v in secrets.items()}
        if recovery_secrets_out is None:
            out.print(json.dumps({"recoverySecrets": doc}, indent=2))
        else:
            recovery_secrets_out.write_text(json.dumps(doc, indent=2))
            out.print(f"saved the recovery secrets for {', '.join(doc)} to {recovery_secrets_out}")


@manifest_group.command("get")
@coordinator_option
@with_trust
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--display-update", is_flag=True, help="Merge security-version updates in.")
@handle_errors
def manifest_get(coordinator: str, output: Path | None, display_update: bool, **trust: Any) -> None:
    """Print (or save) the deployed manifest after checking the root's signature on it."""
    with open_client(coordinator, **trust) as c:
        raw, fingerprint = c.manifest()
        svn = c.security_version_updates() if display_update else {}
    if svn:
        doc = Manifest.from_json(raw).document_copy()
        packages = _field(doc, "Packages")
        for name, version in svn.items():
            package = packages.get(name, {})
            package[
                next((k for k in package if k.lower() == "securityversion"), "SecurityVersion")
            ] = version
        raw = json.dumps(doc, indent=2).encode()
    if output:
        output.write_bytes(raw)
        out.print(f"saved manifest {fingerprint} to {output}")
    else:
        out.print(raw.decode())


@manifest_group.command("signature")
@click.argument("manifest_file", type=_FILE)
@handle_errors
def manifest_signature(manifest_file: Path) -> None:
    """Print the fingerprint (SHA-256 of the canonical bytes) of a local manifest."""
    out.print(Manifest.from_json(read_file(manifest_file, "manifest")).fingerprint())


@manifest_group.command("verify")
@click.argument("manifest")
@coordinator_option
@with_trust
@handle_errors
def manifest_verify(manifest: str, coordinator: str, **trust: Any) -> None:
    """Check that the deployed manifest is MANIFEST (a file, or its 64-hex fingerprint)."""
    path = Path(manifest)
    if path.is_file():
        expected = Manifest.from_json(read_file(path, "manifest")).fingerprint()
    elif len(manifest) == 64 and all(ch in "0123456789abcdef" for ch in manifest.lower()):
        expected = manifest.lower()
    else:
        raise ManifestError(f"{manifest!r} is neither a manifest file nor a SHA-256 fingerprint")
    with open_client(coordinator, **trust) as c:
        _, deployed = c.manifest()
    if deployed != expected:
        raise ManifestError(
            f"the deployed manifest {deployed} is not the expected {expected}: do not proceed"
        )
    out.print(f"deployed manifest matches: {deployed}")


@manifest_group.command("log")
@coordinator_option
@with_trust
@click.option("--verify", "verify_log", is_flag=True, help="Check the hash chain and signed head.")
@handle_errors
def manifest_log(coordinator: str, verify_log: bool, **trust: Any) -> None:
    """Print the update log (one JSON line per entry)."""
    with open_client(coordinator, **trust) as c:
        entries = c.verified_update_log() if verify_log else c.update_log()
    for entry in entries:
        out.print(entry, markup=False)
    if verify_log:
        out.print(f"update log verified: {len(entries)} entries, chain and signed head intact")


@manifest_group.group("update")
def update_group() -> None:
    """Update the deployed manifest (security versions, or a full multi-party update)."""


@update_group.command("apply")
@click.argument("manifest_file", type=_FILE)
@coordinator_option
@with_trust
@with_user_cert
@handle_errors
def update_apply(manifest_file: Path, coordinator: str, **trust: Any) -> None:
    """Submit MANIFEST_FILE: a package-only security-version update, or a full update."""
    raw = read_file(manifest_file, "manifest")
    with open_client(coordinator, **trust) as c:
        result = c.update_apply(raw)
    _report(result)


@update_group.command("acknowledge")
@click.argument("manifest_file", type=_FILE)
@coordinator_option
@with_trust
@with_user_cert
@handle_errors
def update_acknowledge(manifest_file: Path, coordinator: str, **trust: Any) -> None:
    """Acknowledge the pending update; MANIFEST_FILE must be the same manifest."""
    raw = read_file(manifest_file, "manifest")
    with open_client(coordinator, **trust) as c:
        result = c.update_acknowledge(raw)
    _report(result)


@update_group.command("cancel")
@coordinator_option
@with_trust
@with_user_cert
@handle_errors
def update_cancel(coordinator: str, **trust: Any) -> None:
    """Cancel the pending update."""
    with open_client(coordinator, **trust) as c:
        c.update_cancel()
    out.print("pending manifest update cancelled")


@update_group.command("get")
@coordinator_option
@with_trust
@click.option("--missing", is_flag=True, help="Print only the users who have not acknowledged.")
@handle_errors
def update_get(coordinator: str, missing: bool, **trust: Any) -> None:
    """Show the pending update and who still has to acknowledge it."""
    with open_client(coordinator, **trust) as c:
        pending = c.update_pending()
    if missing:
        for user in pending.get("missing", []):
            out.print(user)
        return
    out.print(f"pending update {pending['fingerprint']}")
    out.print(f"acknowledged by: {', '.join(pending.get('acknowledged', [])) or '-'}")
    out.print(f"missing: {', '.join(pending.get('missing', [])) or '-'}")
    out.print(f"acknowledgements still needed: {pending.get('remaining', 0)}")


def _field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A top-level section, matched case-insensitively like manifest keys are."""
    for key, value in doc.items():
        if key.lower() == name.lower() and isinstance(value, dict):
            return value
    return {}


def _report(result: dict[str, Any]) -> None:
    if result.get("applied"):
        out.print(f"update applied ({result.get('kind')}); fingerprint {result.get('fingerprint')}")
        secrets = result.get("recoverySecrets") or {}
        if secrets:
            out.print(json.dumps({"recoverySecrets": secrets}, indent=2))
    else:
        out.print(
            f"update {result.get('fingerprint')} pending: "
            f"{result.get('missingAcknowledgements')} more acknowledgement(s) needed from "
            f"{', '.join(result.get('missingUsers', []))}"
        )


def register(cli: click.Group) -> None:
    """Attach the manifest commands."""
    cli.add_command(manifest_group)
