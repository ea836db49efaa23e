"""The update log: append-only, hash-chained entries with a head signed by the root key.

Each entry is canonical JSON (sorted keys, no spaces) holding ``seq``, ``time``, ``action``,
``subject``, ``user`` and ``prev``: the SHA-256 (hex) of the previous entry's bytes, or 64 zeros
for the first. The head ``{"size", "hash", "time"}`` names the number of entries and the hash of the
last one, and carries an ECDSA-SHA256 signature by the coordinator root key over its canonical
JSON. A removed, reordered or edited entry breaks the chain or the head (ADR 0011).

:func:`verify_update_log` is pure and used by clients; :func:`append_entry` runs inside a store
transaction of the service.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from veil.errors import IntegrityError, ProtocolError

__all__ = [
    "GENESIS",
    "UpdateLog",
    "append_entry",
    "entry_hash",
    "head_bytes",
    "read_log",
    "verify_update_log",
]

GENESIS = "0" * 64
_PREFIX = "updatelog/"
_HEAD = "updatelog-head"
UNREADABLE = "<unreadable: the sealed entry failed authentication>"


class _Txn(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes) -> None: ...
    def keys(self, prefix: str) -> list[str]: ...


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(entry: str) -> str:
    """SHA-256 (hex) of one entry's bytes."""
    return hashlib.sha256(entry.encode()).hexdigest()


def head_bytes(size: int, last_hash: str, time: str) -> bytes:
    """The canonical bytes the root key signs for a head."""
    return _canonical({"hash": last_hash, "size": size, "time": time})


@dataclass(frozen=True)
class UpdateLog:
    """The entries (exact bytes as text) and the signed head, as served by the coordinator."""

    entries: tuple[str, ...]
    head: dict[str, Any]


def append_entry(
    txn: _Txn,
    *,
    now: dt.datetime,
    action: str,
    subject: str,
    user: str,
    sign: Callable[[bytes], bytes],
) -> None:
    """Append one entry and re-sign the head, inside the caller's transaction."""
    raw_head = txn.get(_HEAD)
    if raw_head is None:
        size, prev = 0, GENESIS
    else:
        head = json.loads(raw_head)
        size, prev = int(head["size"]), str(head["hash"])
    entry = _canonical(
        {
            "action": action,
            "prev": prev,
            "seq": size,
            "subject": subject,
            "time": now.isoformat(),
            "user": user,
        }
    ).decode()
    txn.put(f"{_PREFIX}{size:012d}", entry.encode())
    time = now.isoformat()
    last = entry_hash(entry)
    signature = sign(head_bytes(size + 1, last, time))
    head_doc = {
        "hash": last,
        "signature": base64.b64encode(signature).decode(),
        "size": size + 1,
        "time": time,
    }
    txn.put(_HEAD, _canonical(head_doc))


def read_log(get: Callable[[str], bytes | None], keys: Sequence[str]) -> UpdateLog:
    """Read every entry; one that cannot be unsealed is returned as a marker that breaks the chain."""
    entries: list[str] = []
    for key in keys:
        try:
            value = get(key)
        except Exception:  # noqa: BLE001 - a tampered row must not hide the rest of the log
            value = None
        entries.append(UNREADABLE if value is None else value.decode("utf-8", "replace"))
    try:
        raw_head = get(_HEAD)
        head: dict[str, Any] = json.loads(raw_head) if raw_head else {}
    except Exception:  # noqa: BLE001 - same: report, let the verifier fail
        head = {"error": UNREADABLE}
    return UpdateLog(entries=tuple(entries), head=head)


def verify_update_log(
    entries: Sequence[str], head: dict[str, Any], root_key: ec.EllipticCurvePublicKey
) -> None:
    """Raise :class:`IntegrityError` unless the entries form the chain the signed head names.

    Steps: (1) each entry parses and its ``seq`` is its position; (2) each ``prev`` is the hash of
    the entry before (64 zeros for the first); (3) the head's ``size`` is the number of entries and
    its ``hash`` the hash of the last; (4) the root key's signature over the head verifies.
    """
    prev = GENESIS
    for index, entry in enumerate(entries):
        # 1. parse
        try:
            doc = json.loads(entry)
        except ValueError:
            raise IntegrityError(f"update log entry {index} is unreadable or edited") from None
        if not isinstance(doc, dict) or doc.get("seq") != index:
            raise IntegrityError(f"update log entry {index} is out of place: an entry is missing")
        # 2. chain
        if doc.get("prev") != prev:
            raise IntegrityError(
                f"update log entry {index} does not follow entry {index - 1}: "
                "an entry was removed or edited"
            )
        prev = entry_hash(entry)
    # 3. head
    if not isinstance(head, dict) or head.get("size") != len(entries):
        raise IntegrityError(
            f"the signed head names {head.get('size') if isinstance(head, dict) else '?'} "
            f"entries but {len(entries)} were served: entries were removed"
        )
    if head.get("hash") != prev:
        raise IntegrityError("the signed head does not match the last entry: the log was edited")
    # 4. signature
    try:
        signature = base64.b64decode(str(head.get("signature", "")), validate=True)
        root_key.verify(
            signature,
            head_bytes(len(entries), prev, str(head.get("time", ""))),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise IntegrityError("the update log head is not signed by the coordinator root") from None


def parse_log_response(data: object) -> UpdateLog:
    """The :class:`UpdateLog` of a ``GET /api/v2/update`` answer; raise ProtocolError if malformed."""
    if not isinstance(data, dict):
        raise ProtocolError("the update log answer is malformed")
    entries, head = data.get("updateLog"), data.get("head")
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ProtocolError("the update log answer has no list of entries")
    if not isinstance(head, dict):
        raise ProtocolError("the update log answer has no head")
    return UpdateLog(entries=tuple(entries), head=head)
