"""Strict JSON loading and the one canonical JSON serialisation used for hashing and signing.

Canonical form: UTF-8, object keys sorted by their UTF-16 code units, no insignificant whitespace,
integers only, strings escaped as Python's ``json`` does with ``ensure_ascii=False`` (quote,
backslash, ``\\b \\f \\n \\r \\t``, other control characters as lowercase ``\\u00XX``).
For documents whose integers fit in ±2**53 this is byte-identical to RFC 8785 (JCS).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from veil.errors import ManifestError

__all__ = ["MAX_DEPTH", "canonical_json", "join_path", "load_json"]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; manifests need fewer than 10 levels."""


def join_path(path: str, key: str | int) -> str:
    """Extend a JSON path: object keys join with ``.``, array indices as ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def canonical_json(doc: object) -> bytes:
    """Serialise a JSON document canonically; this is the ONE function whose bytes get hashed.

    Accepts ``None``, ``bool``, ``int``, ``str``, mappings with string keys, lists and tuples.
    Raises :class:`~veil.errors.ManifestError` (with the JSON path) for floats, non-string keys,
    strings that are not valid Unicode (lone surrogates) and anything else that is not JSON.
    """
    out: list[str] = []
    _emit(doc, out, "", 0)
    return "".join(out).encode("utf-8")


def _sort_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _string(value: str, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError(
            "the string is not valid Unicode (it holds a lone surrogate); fix the text",
            path=path,
        ) from None
    return json.dumps(value, ensure_ascii=False)


def _emit(value: object, out: list[str], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ManifestError(f"the document nests deeper than {MAX_DEPTH} levels", path=path)
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        try:
            out.append(str(int(value)))
        except ValueError:
            raise ManifestError("the integer is too large", path=path) from None
    elif isinstance(value, str):
        out.append(_string(value, path))
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        for key in keys:
            if not isinstance(key, str):
                raise ManifestError(f"object key {key!r} is not a string", path=path)
            _string(key, join_path(path, key))
        out.append("{")
        for index, key in enumerate(sorted(keys, key=_sort_key)):
            if index:
                out.append(",")
            out.append(_string(key, path))
            out.append(":")
            _emit(value[key], out, join_path(path, key), depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, join_path(path, index), depth + 1)
        out.append("]")
    elif isinstance(value, float | Decimal):
        raise ManifestError(
            "floating-point numbers are not allowed in a manifest; write an integer", path=path
        )
    else:
        raise ManifestError(f"a {type(value).__name__} is not a JSON value", path=path)


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(
                f"the key {key!r} appears twice in one JSON object; keep only one of them"
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ManifestError(f"{name} is not valid JSON; write an integer")


def load_json(data: bytes | str) -> object:
    """Decode JSON strictly: UTF-8 only, no duplicate keys, no NaN/Infinity; floats become
    :class:`~decimal.Decimal` so that :func:`canonical_json` can reject them with their path."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"the manifest is not UTF-8 (invalid byte at offset {exc.start}); save it as UTF-8"
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise ManifestError(f"expected JSON text as bytes or str, got {type(data).__name__}")
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_float=Decimal,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"the manifest is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ManifestError(f"the document nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise ManifestError(f"the manifest is not valid JSON: {exc}") from None
