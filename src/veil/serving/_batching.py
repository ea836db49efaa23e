"""Adaptive server-side batching: concatenate concurrent requests along dimension 0.

A request waits at most ``max_wait_s`` for others (or until ``max_batch_size`` rows are queued);
the batch runs once in a worker thread and each request gets its own slice back. Requests whose
tensors cannot be concatenated (other trailing shapes, strings) run alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veil.serving._config import BatchingConfig

__all__ = ["Batcher"]

Array = np.ndarray[Any, Any]


@dataclass
class _Pending:
    feeds: Mapping[str, Array]
    rows: int
    future: asyncio.Future[list[Array]] = field(repr=False)


class Batcher:
    """Groups requests for one model version and signature (the default one)."""

    def __init__(self, config: BatchingConfig) -> None:
        self._config = config
        self._queues: dict[tuple[Any, ...], list[_Pending]] = {}
        self._timers: dict[tuple[Any, ...], asyncio.TimerHandle] = {}

    async def run(
        self, target: Any, signature: Any, feeds: Mapping[str, Array], outputs: Sequence[str]
    ) -> list[Array]:
        """Run ``feeds`` as part of a batch; returns this request's outputs."""
        rows = {a.shape[0] if a.ndim else -1 for a in feeds.values()}
        if len(rows) != 1 or -1 in rows or any(a.dtype == object for a in feeds.values()):
            return await asyncio.to_thread(_run, target, signature, feeds, outputs)
        key = (
            id(target.model),
            tuple(outputs),
            tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(feeds.items())),
        )
        loop = asyncio.get_running_loop()
        pending = _Pending(feeds, rows.pop(), loop.create_future())
        queue = self._queues.setdefault(key, [])
        queue.append(pending)
        if sum(p.rows for p in queue) >= self._config.max_batch_size:
            self._flush(key, target, signature, outputs)
        elif key not in self._timers:
            self._timers[key] = loop.call_later(
                self._config.max_wait_s, self._flush, key, target, signature, outputs
            )
        return await pending.future

    def _flush(self, key: tuple[Any, ...], target: Any, signature: Any, outputs: Any) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        batch = self._queues.pop(key, [])
        if batch:
            task = asyncio.ensure_future(self._execute(batch, target, signature, outputs))
            task.add_done_callback(lambda _: None)

    async def _execute(
        self, batch: list[_Pending], target: Any, signature: Any, outputs: Sequence[str]
    ) -> None:
        names = list(batch[0].feeds)
        feeds = {n: np.concatenate([p.feeds[n] for p in batch]) for n in names}
        try:
            results = await asyncio.to_thread(_run, target, signature, feeds, outputs)
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting request
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        start = 0
        for pending in batch:
            end = start + pending.rows
            if not pending.future.done():
                pending.future.set_result([np.asarray(r)[start:end] for r in results])
            start = end


def _run(
    target: Any, signature: Any, feeds: Mapping[str, Array], outputs: Sequence[str]
) -> list[Array]:
    return [np.asarray(r) for r in target.model.run(signature, feeds, list(outputs))]
