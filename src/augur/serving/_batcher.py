"""Answering the ``/decide`` requests that arrive together with one pipeline call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class NaturalBatcher:
    """Groups the ``/decide`` requests that arrive together into one pipeline call.

    No timer: the first request of a batch schedules its flush ``turns`` event-loop turns
    ahead (``call_soon``), so the batch is whatever was parsed meanwhile — under load, the
    requests that queued while the previous batch ran (two turns also catch those read in
    the next poll). One client waits two loop turns; many clients share one feature read
    and one ensemble call per model version.
    """

    def __init__(
        self, fn: Callable[[list[Any]], list[Any]], max_batch: int = 32, turns: int = 2
    ) -> None:
        if turns < 1:
            raise ValueError("turns must be >= 1")
        self._fn = fn
        self._max = max_batch
        self._turns = turns
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._scheduled = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: Any) -> Any:
        """The result for ``item`` (an exception is returned, not raised)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._wait, loop, self._turns - 1)
        return await fut

    def _wait(self, loop: asyncio.AbstractEventLoop, turns: int) -> None:
        if turns > 0:
            loop.call_soon(self._wait, loop, turns - 1)
        else:
            self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self._max], self._pending[self._max :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._scheduled = False
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._fn([item for item, _ in batch])
        except Exception as exc:
            results = [exc] * len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)


__all__ = ["NaturalBatcher"]
