"""Canonical bytes and fingerprints depend only on the document's content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veil.errors import ManifestError
from veil.manifest import Manifest, canonical_json

Doc = dict[str, Any]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _reversed(value: object) -> object:
    """The same JSON value with every object's key insertion order reversed."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


@given(json_values)
def test_canonical_json_is_idempotent(value: object) -> None:
    """Parsing canonical bytes and canonicalising again gives the same bytes."""
    once = canonical_json(value)
    assert canonical_json(json.loads(once)) == once


@given(json_values)
def test_canonical_json_ignores_key_order_and_whitespace(value: object) -> None:
    """Reordering object keys or re-indenting the JSON text does not change the canonical bytes."""
    expected = canonical_json(value)
    assert canonical_json(_reversed(value)) == expected
    assert canonical_json(json.loads(json.dumps(value, indent=3))) == expected


def test_canonical_json_exact_bytes() -> None:
    """Keys are sorted, separators carry no spaces and non-ASCII text stays UTF-8."""
    doc = {"b": [1, True, None], "a": {"é": "\n\u0001"}, "B": -0}
    assert canonical_json(doc) == '{"B":0,"a":{"é":"\\n\\u0001"},"b":[1,true,null]}'.encode()


def test_canonical_json_sorts_by_utf16_code_units() -> None:
    """Keys sort by UTF-16 code units as RFC 8785 does, so U+1F600 precedes U+FF61."""
    assert canonical_json({"\uff61": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\uff61":1}'.encode()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param({"a": [1, 1.5]}, "a[1]", id="float"),
        pytest.param({"a": {"b": Decimal("2.0")}}, "a.b", id="decimal"),
        pytest.param({"a": {1: 2}}, "a", id="int-key"),
        pytest.param({"a": "\ud800"}, "a", id="lone-surrogate"),
        pytest.param({"a": b"bytes"}, "a", id="bytes"),
    ],
)
def test_canonical_json_rejects_non_json(value: object, path: str) -> None:
    """Floats, non-string keys, invalid Unicode and non-JSON types are rejected at their path."""
    with pytest.raises(ManifestError) as info:
        canonical_json(value)
    assert info.value.path == path


def test_canonical_json_rejects_deep_nesting() -> None:
    """Documents nested deeper than the limit are rejected rather than recursing without bound."""
    value: object = 0
    for _ in range(100):
        value = [value]
    with pytest.raises(ManifestError, match="deeper"):
        canonical_json(value)


def test_manifest_canonical_bytes_ignore_layout(make_doc: Callable[[], Doc]) -> None:
    """Manifests that differ only in key order and whitespace have equal bytes and fingerprints."""
    doc = make_doc()
    compact = Manifest.from_json(json.dumps(doc, separators=(",", ":")))
    pretty = Manifest.from_json(json.dumps(_reversed(doc), indent=4).encode())
    assert compact.canonical_bytes() == pretty.canonical_bytes() == canonical_json(doc)
    assert compact.fingerprint() == pretty.fingerprint()
    assert compact == pretty
    assert hash(compact) == hash(pretty)


def test_fingerprint_is_sha256_of_canonical_bytes(make_doc: Callable[[], Doc]) -> None:
    """The fingerprint is the lowercase hex SHA-256 of the canonical bytes, stable across parses."""
    manifest = Manifest(make_doc())
    assert manifest.fingerprint() == hashlib.sha256(manifest.canonical_bytes()).hexdigest()
    assert manifest.fingerprint() == Manifest(make_doc()).fingerprint()
    assert manifest.fingerprint() == manifest.fingerprint().lower()


def test_fingerprint_pins_the_content(make_doc: Callable[[], Doc]) -> None:
    """Changing any value changes the fingerprint."""
    doc = make_doc()
    before = Manifest(doc).fingerprint()
    doc["Marbles"]["m"]["MaxActivations"] = 1
    assert Manifest(doc).fingerprint() != before


def test_canonical_bytes_keep_the_document_as_given(make_doc: Callable[[], Doc]) -> None:
    """Canonical bytes keep a key's spelling ("uniqueid") even though it matches UniqueID."""
    doc = make_doc()
    doc["Packages"]["pkg"] = {"uniqueid": "AB" * 32}
    manifest = Manifest(doc)
    assert b'"uniqueid":"' + b"AB" * 32 in manifest.canonical_bytes()
    assert manifest.packages["pkg"].unique_id == "ab" * 32


def test_document_copy_round_trips(make_doc: Callable[[], Doc]) -> None:
    """document_copy() returns a mutable copy that rebuilds an equal manifest."""
    manifest = Manifest(make_doc())
    copy = manifest.document_copy()
    assert Manifest(copy) == manifest
    copy["Marbles"]["m"]["MaxActivations"] = 3
    assert Manifest(copy) != manifest


def test_constructor_does_not_alias_the_callers_document(make_doc: Callable[[], Doc]) -> None:
    """Mutating the dict after construction changes neither the fields nor the fingerprint."""
    doc = make_doc()
    manifest = Manifest(doc)
    before = manifest.fingerprint()
    doc["Marbles"]["m"]["Package"] = "other"
    assert manifest.marbles["m"].package == "pkg"
    assert manifest.fingerprint() == before
