"""Group commit: many adapters submit, one writer commits them together.

`submit` resolves only after the transaction that holds the punches has committed, so adapters
can acknowledge their source right after it. The queue is bounded: when the store falls behind,
submitters wait (back-pressure) instead of memory growing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..record import Record, Rejection
from ..store import CommitResult, Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    records: Sequence[Record]
    rejections: Sequence[Rejection]
    checkpoints: Mapping[tuple[str, str], Any]
    future: asyncio.Future[CommitResult]
    size: int = field(default=0)


class GroupWriter:
    def __init__(
        self,
        store: Store,
        max_queue: int = 10_000,
        max_batch: int = 5_000,
        on_commit: Callable[[Sequence[Record], CommitResult], None] | None = None,
    ):
        self.store = store
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self.on_commit = on_commit
        # Commits run on their own thread: adapters parked in blocking reads can never starve them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spotme-writer")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="group-writer")

    async def submit(
        self,
        records: Sequence[Record],
        rejections: Sequence[Rejection] = (),
        checkpoints: Mapping[tuple[str, str], Any] | None = None,
    ) -> CommitResult:
        if self._task is None or self._task.done():
            raise RuntimeError("writer is not running")
        fut: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        job = _Job(records, rejections, checkpoints or {}, fut, len(records) + len(rejections))
        await self._queue.put(job)
        return await asyncio.shield(fut)

    async def close(self) -> None:
        """Commit everything already queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            job = await self._queue.get()
            if job is None:
                break
            jobs = [job]
            size = job.size
            while size < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                size += nxt.size
            await self._commit(jobs)

    async def _commit(self, jobs: list[_Job]) -> None:
        records = [r for j in jobs for r in j.records]
        rejections = [r for j in jobs for r in j.rejections]
        checkpoints: dict[tuple[str, str], Any] = {}
        for j in jobs:
            checkpoints.update(j.checkpoints)
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self._executor, self.store.commit, records, rejections, checkpoints
            )
        except Exception as exc:
            log.error("commit of %d records failed: %s", len(records), exc)
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        if self.on_commit is not None:
            try:
                self.on_commit(records, result)
            except Exception:  # observers must never break the commit path
                log.exception("on_commit observer failed")
        new = set(result.new)
        q_iter = iter(result.quarantined)
        for j in jobs:
            part = CommitResult()
            seen: set[str] = set()
            for r in j.records:
                if r.id in new and r.id not in seen:
                    part.new.append(r.id)
                    seen.add(r.id)
                else:
                    part.duplicate.append(r.id)
            part.quarantined = [next(q_iter) for _ in j.rejections]
            if not j.future.done():
                j.future.set_result(part)
            new -= seen
