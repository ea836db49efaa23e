"""The Dockerfiles, read as text (no container engine needed): pinned, non-root, nothing to build with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy._tools import DEPLOY

DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*"))


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _base_images(instructions: list[tuple[str, str]]) -> list[str]:
    args = {}
    images = []
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = value
        elif word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last:]


def test_both_images_have_a_dockerfile() -> None:
    """One Dockerfile for the coordinator and one for the inference server."""
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.coordinator", "Dockerfile.server"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_python_3_11_slim_pinned(path: Path) -> None:
    """Every stage starts from python 3.11 slim with a full patch version or a digest."""
    for image in _base_images(_instructions(path.read_text())):
        assert re.fullmatch(
            r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image
        ) or re.fullmatch(r"python(:[\w.-]+)?@sha256:[0-9a-f]{64}", image), image


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user(path: Path) -> None:
    """The shipped stage ends as a numeric non-root USER, so runAsNonRoot can verify it."""
    users = [rest for word, rest in _final_stage(_instructions(path.read_text())) if word == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_installs_pinned_wheels_and_leaves_no_build_tools(path: Path) -> None:
    """pip uses constraints.txt, the final stage installs offline and removes pip; no compilers."""
    text = path.read_text()
    instructions = _instructions(text)
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "--constraint constraints.txt" in runs
    final = " ".join(rest for word, rest in _final_stage(instructions) if word == "RUN")
    assert "--no-index" in final
    assert "pip uninstall --yes pip" in final
    assert not re.search(r"\b(build-essential|gcc|g\+\+|make|apt-get install)\b", final)
    entrypoints = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoints == ['["veil"]']
