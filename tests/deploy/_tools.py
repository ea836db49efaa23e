"""Finding the deployment tools (installed by scripts/install-deploy-tools.sh) or skipping."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
INSTALL_HINT = "run: bash scripts/install-deploy-tools.sh"


def missing(what: str) -> None:
    """Skip with the reason, or fail when VEIL_REQUIRE_DEPLOY_TOOLS=1 (CI)."""
    reason = f"{what} is not installed ({INSTALL_HINT})"
    if os.environ.get("VEIL_REQUIRE_DEPLOY_TOOLS") == "1":
        pytest.fail(f"VEIL_REQUIRE_DEPLOY_TOOLS=1 but {reason}")
    pytest.skip(reason)


def module(name: str) -> ModuleType:
    """Import ``name`` or skip/fail as :func:`missing` says."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python package {name!r}")
        raise  # unreachable: missing() always raises


def kubectl() -> str:
    """The kubectl next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        missing("kubectl (with its built-in kustomize)")
    assert found is not None
    return found
