"""Fixtures for the DCAP verifier tests: the shared vectors, parametrized by id."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._vectors import DcapVector, dcap_vectors, vectors_dir


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``dcap_vector`` over every DCAP vector, ``accept_vector`` over the accepts and
    ``accepting_vector`` over those whose cryptography verifies (accepts and policy rejects)."""
    if "dcap_vector" in metafunc.fixturenames:
        vectors = dcap_vectors()
        metafunc.parametrize("dcap_vector", vectors, ids=[v.id for v in vectors])
    if "accept_vector" in metafunc.fixturenames:
        vectors = tuple(v for v in dcap_vectors() if v.entry["expect"] == "accept")
        metafunc.parametrize("accept_vector", vectors, ids=[v.id for v in vectors])
    if "accepting_vector" in metafunc.fixturenames:
        vectors = tuple(v for v in dcap_vectors() if v.accepts_cryptographically)
        metafunc.parametrize("accepting_vector", vectors, ids=[v.id for v in vectors])


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The shared vector folder (/work/shared/vectors); fails loudly when it is missing."""
    try:
        return vectors_dir()
    except FileNotFoundError as error:
        pytest.fail(str(error))


__all__ = ["DcapVector"]
