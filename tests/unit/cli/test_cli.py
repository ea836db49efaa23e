"""The veil command: help everywhere, one-sentence errors, documented exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from veil.cli import cli
from veil.cli._common import exit_code_for
from veil.errors import (
    AuthorizationError,
    ConfigurationError,
    ManifestError,
    NetworkError,
    PolicyError,
    StateError,
)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "veil")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    """Every command and group answers --help with exit 0."""
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PolicyError("x", claim="tee"), 1),
        (AuthorizationError("x"), 1),
        (ManifestError("x"), 2),
        (ConfigurationError("x"), 2),
        (NetworkError("x"), 3),
        (StateError("x"), 4),
    ],
)
def test_exit_codes_follow_the_documented_table(error: Exception, code: int) -> None:
    """Refusals exit 1, bad input 2, environment 3, state 4."""
    assert exit_code_for(error) == code


def test_malformed_manifest_is_one_sentence_naming_the_field(tmp_path: Path) -> None:
    """A manifest with an unknown field fails with exit 2 and names the field, no traceback."""
    manifest = tmp_path / "m.json"
    manifest.write_text(
        json.dumps(
            {
                "Packages": {"p": {"UniqueID": "ab" * 32, "Bogus": 1}},
                "Marbles": {"m": {"Package": "p"}},
            }
        )
    )
    result = CliRunner().invoke(cli, ["manifest", "signature", str(manifest)])
    assert result.exit_code == 2
    assert "Bogus" in result.output
    assert "Traceback" not in result.output


def test_manifest_signature_is_independent_of_formatting(tmp_path: Path) -> None:
    """The printed fingerprint is the same for the same manifest written differently."""
    doc = {"Packages": {"p": {"UniqueID": "ab" * 32}}, "Marbles": {"m": {"Package": "p"}}}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(doc))
    b.write_text(json.dumps(doc, indent=4, sort_keys=True))
    runner = CliRunner()
    fa = runner.invoke(cli, ["manifest", "signature", str(a)]).output.strip()
    fb = runner.invoke(cli, ["manifest", "signature", str(b)]).output.strip()
    assert fa == fb
    assert len(fa) == 64


def test_unreadable_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    """A policy that pins nothing is refused before any network call (exit 2)."""
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"TEE": "simulated"}))
    result = CliRunner().invoke(
        cli, ["verify", "--coordinator", "127.0.0.1:1", "--policy", str(policy)]
    )
    assert result.exit_code == 2
    assert "pins no identity" in result.output
