"""Dynamic batching for the in-process host (Ray Serve replicas use ``@serve.batch`` instead).

Concurrent callers ``submit`` one item each; a background task hands up to ``max_batch_size``
items that arrived within ``wait_s`` of the first one to ``handler`` in one call, and each caller
gets the result in its slot. One batch runs at a time, like ``@serve.batch``'s default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    def __init__(
        self,
        handler: Callable[[list[Any]], Awaitable[list[Any]]],
        *,
        max_batch_size: int,
        wait_s: float,
    ) -> None:
        self.handler = handler
        self.max_batch_size = max_batch_size
        self.wait_s = wait_s
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """The handler's result for ``item`` (an exception instance is returned, not raised)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if self._arrived is None:
            self._arrived = asyncio.Event()
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        assert self._arrived is not None
        while self._queue:
            deadline = asyncio.get_running_loop().time() + self.wait_s
            while len(self._queue) < self.max_batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch, self._queue = self._queue[: self.max_batch_size], self._queue[self.max_batch_size :]
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # drop cancelled callers
            if not batch:
                continue
            try:
                results = await self.handler([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
                results = [exc] * len(batch)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)


class BatchedInference:
    """Servicer mixin: jobs run in batches in one worker thread.

    In-process, concurrent jobs are merged by a :class:`MicroBatcher`; the Ray Serve deployment
    (:func:`lorag.serving.batched_deployment`) replaces ``_enqueue`` with ``@serve.batch``.
    ``run_many(jobs)`` returns one result or error per job.
    """

    def _init_batching(self, run_many, *, max_batch_size: int, wait_s: float, thread_name: str) -> None:
        self._run_many = run_many
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._batcher = MicroBatcher(self._run_batch, max_batch_size=max_batch_size, wait_s=wait_s)

    async def _run_batch(self, jobs: list) -> list:
        """Run a batch of jobs in the worker thread; one result or error per job."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_many, jobs)

    async def _enqueue(self, job):
        return await self._batcher.submit(job)
