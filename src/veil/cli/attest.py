"""Attestation commands: the simulated platform, measurements, and verifying evidence files."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import warnings
from pathlib import Path
from typing import cast

import click

from veil.attestation import (
    Collateral,
    Evidence,
    Policy,
    SimulatedPlatform,
    TEEKind,
    TrustAnchors,
    check_claims,
    measure,
    verify_evidence,
)
from veil.cli._common import console, handle_errors, out, read_file
from veil.errors import ConfigurationError, EvidenceError, PolicyError, VerificationError


@click.group("attest")
def attest_group() -> None:
    """Administrator: simulated TEE platform and measurements."""


@attest_group.group("simulated-platform")
def simulated_platform_group() -> None:
    """The explicit simulated TEE (for machines without TEE hardware)."""


@simulated_platform_group.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def simulated_platform_init(directory: Path) -> None:
    """Create a simulated platform (root CA, attestation key, seal secret) in DIRECTORY."""
    platform = SimulatedPlatform.create(directory)
    out.print(
        f"simulated platform created in {directory}; root certificate {directory / 'root.pem'}"
    )
    out.print(f"simulated root SHA-256 fingerprint: {platform.fingerprint()}")
    out.print("[yellow]warning: the simulated TEE protects nothing; use it only for development[/]")


@attest_group.command("measure")
@click.option("--entry", type=click.Choice(["coordinator", "serve", "run"]), required=True)
@click.option(
    "--extra-file",
    "extra_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print a policy JSON document instead.")
@handle_errors
def attest_measure(entry: str, extra_files: tuple[Path, ...], as_json: bool) -> None:
    """Print the simulated UniqueID of this veil installation for an entry point."""
    unique_id = measure(entry, extra_files=extra_files).hex()
    if as_json:
        out.print(json.dumps({"TEE": "simulated", "UniqueID": unique_id, "Debug": False}, indent=2))
    else:
        out.print(unique_id)


def _load_certs(path: Path) -> tuple[bytes, ...]:
    """DER of every certificate in a PEM (one or several) or DER file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = read_file(path, "certificate file")
    try:
        # AMD's real VCEKs carry non-positive serial numbers; cryptography warns about them.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*serial number.*", category=UserWarning)
            if b"-----BEGIN" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise ConfigurationError(f"{path} holds no PEM or DER certificate") from None
    return tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)


def _decode_evidence(data: bytes, encoding: str) -> bytes:
    text = data.strip()
    is_hex = bool(re.fullmatch(rb"(0x)?[0-9a-fA-F\s]+", text)) and len(text) > 0
    if encoding == "hex" or (encoding == "auto" and is_hex):
        cleaned = re.sub(rb"\s+", b"", text).removeprefix(b"0x")
        try:
            return bytes.fromhex(cleaned.decode("ascii"))
        except ValueError:
            raise ConfigurationError("the evidence is not valid hex") from None
    return data


def _self_signed(ders: tuple[bytes, ...]) -> bytes:
    from cryptography import x509

    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        if cert.issuer == cert.subject:
            return der
    raise ConfigurationError("the trust anchor file holds no self-signed root certificate")


@attest_group.command("verify")
@click.argument("evidence_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--tee", type=click.Choice(["sgx", "tdx", "sev-snp", "nvidia", "simulated"]), required=True
)
@click.option(
    "--collateral",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="DCAP collateral (QuoteCollateralV3 JSON).",
)
@click.option(
    "--certs",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificates that come with the evidence (SNP VCEK/VLEK [+ASK], NVIDIA chain); PEM or DER.",
)
@click.option(
    "--trust-anchor",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The pinned root (Intel SGX Root CA, AMD ARK or a bundle holding it, NVIDIA root, simulated root).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy JSON; default: no debug, UpToDate and SWHardeningNeeded.",
)
@click.option(
    "--at", "at", required=True, help="Verification time, ISO-8601 (e.g. 2025-07-04T10:28:00Z)."
)
@click.option(
    "--evidence-encoding",
    type=click.Choice(["raw", "hex", "auto"]),
    default="auto",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def attest_verify(
    evidence_file: Path,
    tee: str,
    collateral: Path | None,
    certs: Path | None,
    trust_anchor: Path,
    policy_file: Path | None,
    at: str,
    evidence_encoding: str,
    as_json: bool,
) -> None:
    """Verify an evidence file offline; exit 0 accepted, 1 rejected, 2 usage error."""
    try:
        try:
            now = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigurationError(f"--at {at!r} is not an ISO-8601 time") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        tee_kind = cast(TEEKind, tee)
        policy = (
            Policy.from_file(policy_file, require_identity=False)
            if policy_file
            else Policy.platform_default(tee_kind)
        )
        anchors_all = _load_certs(trust_anchor)
        root = _self_signed(anchors_all)
        anchors = TrustAnchors(
            simulated_root_der=root if tee == "simulated" else None,
            intel_root_der=root if tee in ("sgx", "tdx") else None,
            amd_roots_der=anchors_all if tee == "sev-snp" else (),
            nvidia_root_der=root if tee == "nvidia" else None,
        )
        material = Collateral(
            dcap_json=read_file(collateral, "collateral") if collateral else None,
            certs=_load_certs(certs) if certs else (),
        )
        evidence = Evidence(
            tee=tee_kind,
            raw=_decode_evidence(read_file(evidence_file, "evidence"), evidence_encoding),
        )
    except ConfigurationError as exc:
        _emit(as_json, {"ok": False, "error": f"usage: {exc.message}"}, exc.message)
        sys.exit(2)
    try:
        if policy.tee != tee_kind:
            raise PolicyError(
                f"the policy is for {policy.tee} but the evidence is {tee}", claim="tee"
            )
        claims = verify_evidence(evidence, trust_anchors=anchors, collateral=material, now=now)
        check_claims(claims, policy)
    except VerificationError as exc:
        step = exc.step if isinstance(exc, EvidenceError) else "policy"
        _emit(
            as_json,
            {"ok": False, "error": f"{step}: {exc.message}"},
            f"rejected at {step}: {exc.message}",
        )
        sys.exit(1)
    if claims.tee == "simulated":
        console.print(
            "[yellow]warning: accepted SIMULATED-TEE evidence (no hardware protection)[/]"
        )
    result: dict[str, object] = {
        "ok": True,
        "tee": claims.tee,
        "tcb_status": claims.tcb_status,
        "advisory_ids": list(claims.advisories),
        "claims": dict(claims.fields),
    }
    _emit(as_json, result, f"accepted: {json.dumps(result, indent=2)}")


def _emit(as_json: bool, doc: dict[str, object], text: str) -> None:
    if as_json:
        click.echo(json.dumps(doc, sort_keys=True))
    else:
        out.print(text)


def register(cli: click.Group) -> None:
    """Attach the attestation commands."""
    cli.add_command(attest_group)
