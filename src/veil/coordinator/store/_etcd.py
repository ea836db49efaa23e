"""The HA store: etcd v3 through its gRPC-JSON gateway, every value sealed as in the SQLite store.

Values are ``nonce (12) ‖ AES-256-GCM(data key, value, associated data = key name)``, byte for byte
the format of :class:`~veil.coordinator.store.SealedSQLiteStore`: etcd sees key names, sizes and
revisions, never a value, and a value moved to another key fails authentication.

Layout under the configurable prefix (``/veil/`` by default)::

    {prefix}kv/{key}          sealed values
    {prefix}meta/deletions    rewritten by every transaction that deletes (see below)

Transactions are optimistic and serializable (ADR 0007). The first read fixes a snapshot revision;
every later read is made at that revision, so the block never sees a mix of two states. Commit is
one etcd ``Txn`` whose compares say that nothing the block saw has changed since:

- each key read: ``mod_revision == seen`` (``create_revision == 0`` when it was absent);
- each prefix listed: no key in the range has ``mod_revision > snapshot`` (catches insertions and
  changes) and ``{prefix}meta/deletions`` is unchanged (catches deletions, which a range compare
  cannot see; a constant number of compares however long the listing).

A failed compare raises :class:`TransactionConflict`; :meth:`EtcdStore.transact` re-runs the block
with bounded, jittered back-off. Endpoints fail over in turn. A commit whose answer was lost (the
member died mid-request) is resolved by looking for the transaction's own ciphertext, which a random
nonce makes unique, in the history of one key it wrote: an acknowledged write is never lost and a
read-modify-write never applies twice.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.errors import ConfigurationError, NetworkError, StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PREFIX = "/veil/"
_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
_HISTORY_STEPS = 64  # versions of one key searched when a commit's outcome is unknown
# gRPC status codes the gateway reports (google.golang.org/grpc/codes).
_DEADLINE_EXCEEDED, _OUT_OF_RANGE, _UNAVAILABLE, _UNKNOWN = 4, 11, 14, 2


class TransactionConflict(StorageError):  # noqa: N818 - a conflict is an outcome, not a fault
    """Another writer changed what the transaction read; re-running the block may succeed."""

    retryable = True


class _EtcdError(StorageError):
    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class _OutcomeUnknownError(Exception):
    """A request that changes state was sent but its answer was lost."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StorageError(
            "etcd returned a value that is not base64: is this an etcd v3?"
        ) from None


def _range_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix``."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


class _Gateway:
    """POSTs to etcd's JSON gateway, failing over between endpoints until a deadline."""

    def __init__(self, endpoints: Sequence[str], *, client: httpx.Client, deadline: float) -> None:
        self._endpoints = list(endpoints)
        self._client = client
        self._deadline = deadline
        self._preferred = 0
        self._lock = threading.Lock()

    def call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """The decoded answer; :class:`_OutcomeUnknownError` when a non-idempotent call may have run."""
        give_up = time.monotonic() + self._deadline
        failures: list[str] = []
        backoff = 0.05
        while True:
            with self._lock:
                start = self._preferred
            for i in range(len(self._endpoints)):
                index = (start + i) % len(self._endpoints)
                endpoint = self._endpoints[index]
                try:
                    answer = self._post(endpoint, path, body, idempotent=idempotent)
                except (NetworkError, _EtcdError) as exc:
                    failures.append(f"{endpoint}: {exc}")
                    log.warning(
                        "etcd endpoint failed, trying the next one",
                        extra={"event": "etcd.failover", "endpoint": endpoint, "error": str(exc)},
                    )
                    continue
                with self._lock:
                    self._preferred = index
                return answer
            if time.monotonic() + backoff > give_up:
                raise NetworkError(
                    f"no etcd endpoint answered {path} within {self._deadline:g} s "
                    f"({'; '.join(failures[-len(self._endpoints) :])}); check the endpoints "
                    "and that a majority of the etcd members is up"
                )
            time.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret
            backoff = min(backoff * 2, 1.0)

    def _post(
        self, endpoint: str, path: str, body: dict[str, Any], *, idempotent: bool
    ) -> dict[str, Any]:
        try:
            response = self._client.post(endpoint + path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NetworkError(f"cannot connect ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            if not idempotent:
                raise _OutcomeUnknownError(f"{endpoint}: {type(exc).__name__}") from None
            raise NetworkError(f"the connection broke ({type(exc).__name__})") from None
        try:
            answer = response.json()
        except ValueError:
            raise NetworkError(
                f"HTTP {response.status_code} that is not JSON: is this etcd's client URL?"
            ) from None
        if not isinstance(answer, dict):
            raise StorageError(f"etcd answered {path} with something other than an object")
        if response.status_code == 200:
            return answer
        code = answer.get("code", _UNKNOWN)
        message = str(answer.get("message") or answer.get("error") or response.reason_phrase)
        if code in (_UNAVAILABLE, _DEADLINE_EXCEEDED, _UNKNOWN) or response.status_code >= 500:
            # No leader, leader changed, request timed out: the proposal may still apply.
            if not idempotent:
                raise _OutcomeUnknownError(f"{endpoint}: {message}")
            raise _EtcdError(message, code=int(code))
        raise _PermanentError(f"etcd refused {path}: {message}", code=int(code))


class _PermanentError(StorageError):
    """etcd refused the request itself (bad argument, compacted revision, permission)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


def _client_tls(ca_file: Path | None, client_cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if client_cert is not None:
            context.load_cert_chain(client_cert[0], client_cert[1])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the etcd TLS files: {exc}") from None
    return context


class _EtcdTxn:
    """One attempt of a transaction: snapshot reads, buffered writes, a compare-guarded commit."""

    def __init__(self, store: EtcdStore) -> None:
        self._store = store
        self._snapshot: int | None = None
        self._reads: dict[str, int] = {}  # key -> mod_revision seen (0: absent)
        self._values: dict[str, bytes | None] = {}
        self._listed: set[str] = set()
        self._deletions_seen: int | None = None
        self._writes: dict[str, bytes | None] = {}
        self._meta_writes: dict[str, bytes] = {}

    def _range(self, key: bytes, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(key), **extra}
        if self._snapshot is not None:
            body["revision"] = str(self._snapshot)
        try:
            answer = self._store._gateway.call("/v3/kv/range", body, idempotent=True)
        except _PermanentError as exc:
            if exc.code == _OUT_OF_RANGE:  # compacted: start again from a fresh snapshot
                raise TransactionConflict("the transaction's snapshot was compacted") from None
            raise
        if self._snapshot is None:
            self._snapshot = int(answer["header"]["revision"])
        return answer

    def get(self, key: str) -> bytes | None:
        """The value of ``key`` at the snapshot, or as this transaction wrote it."""
        if key in self._writes:
            return self._writes[key]
        if key in self._values:
            return self._values[key]
        kvs = self._range(self._store._data_key(key)).get("kvs", [])
        if not kvs:
            self._reads[key], self._values[key] = 0, None
            return None
        self._reads[key] = int(kvs[0]["mod_revision"])
        value = self._store._open(key, _unb64(kvs[0].get("value", "")))
        self._values[key] = value
        return value

    def put(self, key: str, value: bytes) -> None:
        """Buffer a write; it reaches etcd only if the whole transaction commits."""
        self._writes[key] = bytes(value)

    def delete(self, key: str) -> None:
        """Buffer a deletion."""
        self._writes[key] = None

    def put_meta(self, name: str, value: bytes) -> None:
        """Buffer a plaintext metadata write that commits with the transaction."""
        self._meta_writes[name] = bytes(value)

    def keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` at the snapshot, with this transaction's own writes."""
        store = self._store
        first = store._data_key(prefix)
        answer = self._range(first, range_end=_b64(_range_end(first)), keys_only=True)
        if self._deletions_seen is None:
            marker = self._range(store._deletions_key).get("kvs", [])
            self._deletions_seen = int(marker[0]["mod_revision"]) if marker else 0
        self._listed.add(prefix)
        skip = len(store._kv_prefix)
        present = {_unb64(kv["key"])[skip:].decode() for kv in answer.get("kvs", [])}
        for key, value in self._writes.items():
            if key.startswith(prefix):
                (present.add if value is not None else present.discard)(key)
        return sorted(present)

    def commit(self) -> None:
        """Apply the writes if nothing read has changed; :class:`TransactionConflict` if it has."""
        if not self._writes and not self._meta_writes:
            return  # read-only: the snapshot was already a consistent, committed state
        store = self._store
        compares: list[dict[str, Any]] = []
        for key, seen in self._reads.items():
            k = _b64(store._data_key(key))
            if seen:
                compares.append(
                    {"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(seen)}
                )
            else:
                compares.append(
                    {"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
                )
        for prefix in sorted(self._listed):
            first = store._data_key(prefix)
            compares.append(
                {
                    "key": _b64(first),
                    "range_end": _b64(_range_end(first)),
                    "target": "MOD",
                    "result": "LESS",
                    "mod_revision": str((self._snapshot or 0) + 1),
                }
            )
        if self._listed:
            compares.append(
                {
                    "key": _b64(store._deletions_key),
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": str(self._deletions_seen or 0),
                }
            )
        puts: list[tuple[bytes, bytes]] = []
        deletes: list[bytes] = []
        for key, value in self._writes.items():
            if value is None:
                deletes.append(store._data_key(key))
            else:
                puts.append((store._data_key(key), store._seal(key, value)))
        if deletes:
            puts.append((store._deletions_key, os.urandom(16)))
        puts += [(store._meta(name), value) for name, value in self._meta_writes.items()]
        if max(len(compares), len(puts) + len(deletes)) > _MAX_TXN_OPS:
            raise StorageError(
                f"a transaction with {len(compares)} reads and {len(puts) + len(deletes)} writes "
                f"exceeds etcd's limit of {_MAX_TXN_OPS} operations; raise etcd's --max-txn-ops"
            )
        ops = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts]
        ops += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        body = {"compare": compares, "success": ops}
        try:
            answer = store._gateway.call("/v3/kv/txn", body, idempotent=not compares)
        except _OutcomeUnknownError as exc:
            log.warning(
                "etcd commit outcome unknown, checking the key history",
                extra={"event": "etcd.commit_unknown", "error": str(exc)},
            )
            committed = store._committed(puts[0][0], puts[0][1], after=self._snapshot or 0)
            if not committed:
                raise TransactionConflict(
                    "the commit did not apply before its member failed"
                ) from None
            return
        if not answer.get("succeeded", False):
            raise TransactionConflict("another writer changed what this transaction read")


class EtcdStore:
    """Sealed coordinator state in etcd v3, shared by any number of coordinator replicas."""

    def __init__(
        self,
        endpoints: Sequence[str],
        data_key: bytes | None,
        *,
        prefix: str = DEFAULT_PREFIX,
        ca_file: Path | None = None,
        client_cert: tuple[Path, Path] | None = None,
        request_timeout: float = 5.0,
        failover_deadline: float = 20.0,
        max_attempts: int = 32,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigurationError("the etcd store needs at least one endpoint URL")
        for endpoint in endpoints:
            if not endpoint.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"etcd endpoint {endpoint!r} must be a URL such as https://etcd-0:2379"
                )
        if not prefix.endswith("/"):
            raise ConfigurationError(f"the etcd key prefix {prefix!r} must end with '/'")
        self._aead: AESGCM | None = None
        if data_key is not None:
            self.unlock(data_key)
        self._kv_prefix = f"{prefix}kv/".encode()
        self._meta_prefix = f"{prefix}meta/".encode()
        self._deletions_key = f"{prefix}meta/deletions".encode()
        self._max_attempts = max_attempts
        uses_tls = any(e.startswith("https://") for e in endpoints)
        verify: ssl.SSLContext | bool = (
            _client_tls(ca_file, client_cert) if uses_tls or ca_file or client_cert else True
        )
        self._client = httpx.Client(
            verify=verify, timeout=request_timeout, transport=transport, trust_env=False
        )
        self._gateway = _Gateway(
            [e.rstrip("/") for e in endpoints], client=self._client, deadline=failover_deadline
        )

    # -- sealing (format of SealedSQLiteStore) -------------------------------------------------
    def unlock(self, data_key: bytes) -> None:
        """Start sealing and unsealing values with ``data_key`` (a store made without one holds
        only plaintext metadata until then: HA replicas that are still looking for the key)."""
        if len(data_key) != 32:
            raise ConfigurationError("the data key must be 32 bytes")
        self._aead = AESGCM(data_key)

    @property
    def unlocked(self) -> bool:
        """Whether the store has its data key."""
        return self._aead is not None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise StorageError("the etcd store has no data key yet: the state is sealed")
        return self._aead

    def _data_key(self, key: str) -> bytes:
        return self._kv_prefix + key.encode()

    def _seal(self, key: str, value: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._cipher().encrypt(nonce, value, key.encode())

    def _open(self, key: str, blob: bytes) -> bytes:
        try:
            return self._cipher().decrypt(blob[:12], blob[12:], key.encode())
        except InvalidTag:
            raise StorageError(
                f"sealed value {key!r} failed authentication: the store was modified"
            ) from None

    # -- Store protocol -----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The committed value of ``key`` (a linearizable read)."""
        answer = self._gateway.call(
            "/v3/kv/range", {"key": _b64(self._data_key(key))}, idempotent=True
        )
        kvs = answer.get("kvs", [])
        return self._open(key, _unb64(kvs[0].get("value", ""))) if kvs else None

    # -- plaintext metadata (never secret: sealed key copies, recovery record, replicas) -------
    def _meta(self, name: str) -> bytes:
        return self._meta_prefix + name.encode()

    def get_meta(self, name: str) -> bytes | None:
        """The plaintext metadata value ``name`` (a linearizable read)."""
        answer = self._gateway.call(
            "/v3/kv/range", {"key": _b64(self._meta(name))}, idempotent=True
        )
        kvs = answer.get("kvs", [])
        return _unb64(kvs[0].get("value", "")) if kvs else None

    def list_meta(self, prefix: str) -> dict[str, bytes]:
        """Every plaintext metadata value whose name starts with ``prefix``."""
        first = self._meta(prefix)
        body = {"key": _b64(first), "range_end": _b64(_range_end(first))}
        kvs = self._gateway.call("/v3/kv/range", body, idempotent=True).get("kvs", [])
        skip = len(self._meta_prefix)
        return {_unb64(kv["key"])[skip:].decode(): _unb64(kv.get("value", "")) for kv in kvs}

    def put_meta(self, name: str, value: bytes, *, only_if_absent: bool = False) -> bool:
        """Write plaintext metadata; with ``only_if_absent`` return False when it exists."""
        key = _b64(self._meta(name))
        compares = (
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
            if only_if_absent
            else []
        )
        body = {
            "compare": compares,
            "success": [{"request_put": {"key": key, "value": _b64(value)}}],
        }
        try:
            answer = self._gateway.call("/v3/kv/txn", body, idempotent=not compares)
        except _OutcomeUnknownError:
            return self.get_meta(name) == value
        return bool(answer.get("succeeded", False))

    def opens(self, data_key: bytes, probe: str) -> bool:
        """Whether ``data_key`` authenticates the sealed value ``probe`` (True when absent)."""
        answer = self._gateway.call(
            "/v3/kv/range", {"key": _b64(self._data_key(probe))}, idempotent=True
        )
        kvs = answer.get("kvs", [])
        if not kvs:
            return True
        blob = _unb64(kvs[0].get("value", ""))
        try:
            AESGCM(data_key).decrypt(blob[:12], blob[12:], probe.encode())
        except (InvalidTag, ValueError):
            return False
        return True

    def has_state(self) -> bool:
        """Whether any sealed value exists (a coordinator has created the state)."""
        first = self._kv_prefix
        body = {"key": _b64(first), "range_end": _b64(_range_end(first)), "count_only": True}
        answer = self._gateway.call("/v3/kv/range", body, idempotent=True)
        return int(answer.get("count", 0)) > 0

    @contextmanager
    def transaction(self) -> Iterator[_EtcdTxn]:
        """One attempt; raises :class:`TransactionConflict` at exit if another writer won.

        Use :meth:`transact` to have conflicts retried.
        """
        txn = _EtcdTxn(self)
        yield txn
        txn.commit()

    def transact(self, block: Callable[[_EtcdTxn], T]) -> T:
        """Run ``block`` in a transaction, re-running it on conflict (bounded, with jitter)."""
        delay = 0.005
        for attempt in range(1, self._max_attempts + 1):
            try:
                with self.transaction() as txn:
                    result = block(txn)
            except TransactionConflict:
                if attempt == self._max_attempts:
                    break
                time.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not a secret
                delay = min(delay * 2, 0.5)
                continue
            return result
        raise TransactionConflict(
            f"the transaction lost to concurrent writers {self._max_attempts} times; "
            "the state is heavily contended: retry the operation later"
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- lost answers -------------------------------------------------------------------------
    def _committed(self, key: bytes, blob: bytes, *, after: int) -> bool:
        """Whether a commit that wrote ``blob`` to ``key`` at a revision > ``after`` applied.

        Reads are linearizable, so once one succeeds the lost proposal has either been applied
        by the current leader or is gone for good. The history of ``key`` is walked backwards.
        """
        revision: int | None = None
        try:
            for _ in range(_HISTORY_STEPS):
                body: dict[str, Any] = {"key": _b64(key)}
                if revision is not None:
                    body["revision"] = str(revision)
                kvs = self._gateway.call("/v3/kv/range", body, idempotent=True).get("kvs", [])
                if not kvs:
                    # Absent: ours never existed unless someone deleted it since.
                    marker = self._gateway.call(
                        "/v3/kv/range", {"key": _b64(self._deletions_key)}, idempotent=True
                    ).get("kvs", [])
                    if not marker or int(marker[0]["mod_revision"]) <= after:
                        return False
                    break
                mod = int(kvs[0]["mod_revision"])
                if mod <= after:
                    return False
                if _unb64(kvs[0].get("value", "")) == blob:
                    return True
                revision = mod - 1
        except _PermanentError:
            pass  # history compacted
        raise StorageError(
            "an etcd member failed during a commit and its outcome cannot be determined; "
            "check the state (veil status) before retrying the operation"
        )
