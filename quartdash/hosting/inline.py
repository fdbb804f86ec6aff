"""Where a plain ``def`` HTTP callback runs: the thread pool, or the event loop.

A thread hop (submit, wake a worker, hand the GIL over and back, wake the
loop) costs more than a trivial callback does. Running every ``def``
callback on the loop, as Dash's FastAPI backend does, is fast until one of
them blocks and every user of the worker waits. So a callback earns the
loop:

1. It starts in the pool. A run there counts as fast when the callback's own
   CPU time was under the threshold (``inline_threshold``) and so was its
   wall time, allowing one threshold more for each other pool run that
   competed with it for the GIL: under load a 1 ms figure can take 10 ms of
   wall time in a thread, waiting for the GIL, not for I/O.
2. After :data:`PROMOTE_AFTER` fast runs in a row it gets a trial on the
   loop: its first run there while no pool run is going (when pool threads
   may take the GIL from the loop, only its CPU time is judged). Under the
   threshold in wall time, it stays. Over it (it waits on I/O, or was
   unlucky), it goes back to the pool and needs twice as many fast runs
   before the next trial (:data:`MAX_EVIDENCE` at most): a callback that
   waits on I/O holds the loop for one run per trial only, ever rarer.
3. Two runs in a row on the loop that take over :data:`SLOW_FACTOR` times
   the threshold (CPU time while pool runs are going, else wall time) send
   it back to the pool for good, with one warning. (One is not enough: the
   garbage collector's full pass may land in any run.)
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["MAX_EVIDENCE", "PROMOTE_AFTER", "SLOW_FACTOR", "InlinePolicy"]

log = logging.getLogger("quartdash")

PROMOTE_AFTER = 16
MAX_EVIDENCE = 1024
SLOW_FACTOR = 10


class _Record:
    __slots__ = ("demoted", "fast_runs", "inline", "needed", "slow", "trial")

    def __init__(self) -> None:
        self.fast_runs = 0
        self.needed = PROMOTE_AFTER  # fast runs before the next trial
        self.inline = False
        self.trial = False  # the next run on the loop decides
        self.slow = False  # its last run on the loop was over SLOW_FACTOR x threshold
        self.demoted = False


class InlinePolicy:
    """Decides, per callback id, where its ``def`` function runs; see the module."""

    def __init__(self, threshold: float, executor: ThreadPoolExecutor) -> None:
        self.threshold = threshold
        self.executor = executor
        self._records: dict[str, _Record] = {}
        self._in_pool = 0  # runs of any callback in the pool now
        self._started = 0  # runs of any callback started in the pool, ever

    def runs_inline(self, callback_id: str) -> bool:
        record = self._records.get(callback_id)
        return record is not None and record.inline

    def run_inline(self, callback_id: str, call: Callable[[], Any]) -> Any:
        """``call()`` on the loop, for a callback that :meth:`runs_inline`."""
        record = self._records[callback_id]
        contended = self._in_pool > 0
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return call()
        finally:
            # With pool runs going, their threads may take the GIL from the
            # loop meanwhile: the wall time then says little about this callback.
            contended = contended or self._in_pool > 0
            self._ran_inline(callback_id, record, time.perf_counter() - start,
                             time.thread_time() - cpu, contended)

    async def run(self, callback_id: str, call: Callable[[], Any]) -> Any:
        """``call()`` where this callback runs now; its result or its exception."""
        record = self._records.get(callback_id)
        if record is None:
            record = self._records[callback_id] = _Record()
        if record.inline:
            return self.run_inline(callback_id, call)
        context = contextvars.copy_context()  # ctx, set_props, get_app() in the thread

        def timed() -> tuple[Any, float, float]:
            start, cpu = time.perf_counter(), time.thread_time()
            result = context.run(call)
            return result, time.perf_counter() - start, time.thread_time() - cpu

        # The other pool runs that overlapped this one: running when it
        # started, or started before it ended.
        others, started = self._in_pool, self._started
        self._in_pool += 1
        self._started += 1
        try:
            result, wall, cpu = await asyncio.get_running_loop().run_in_executor(
                self.executor, timed)
        finally:
            self._in_pool -= 1
        self._ran_in_pool(record, wall, cpu, others + self._started - started - 1)
        return result

    def _ran_in_pool(self, record: _Record, wall: float, cpu: float, others: int) -> None:
        threshold = self.threshold
        if record.demoted or record.inline or threshold <= 0:
            return  # (a run that started before the callback went to the loop)
        if cpu >= threshold or wall >= threshold * (1 + others):
            record.fast_runs = 0
            return
        record.fast_runs += 1
        if record.fast_runs >= record.needed:
            record.inline = record.trial = True

    def _ran_inline(self, callback_id: str, record: _Record, wall: float, cpu: float,
                    contended: bool) -> None:
        held = cpu if contended else wall
        if record.trial:
            if held >= self.threshold:
                record.trial = record.inline = False
                record.fast_runs = 0
                record.needed = min(record.needed * 2, MAX_EVIDENCE)
            elif not contended:
                record.trial = False  # passed; a contended run decides nothing
            return
        if held <= self.threshold * SLOW_FACTOR:
            record.slow = False
            return
        if not record.slow:
            # One slow run may be the collector's full pass (50 ms on a large
            # heap, measured): the callback is judged on its next run too.
            record.slow = True
            return
        record.inline = False
        record.demoted = True
        log.warning("callback %s held the event loop for %.1f ms; it runs in the thread "
                    "pool from now on (inline_threshold=%g s)",
                    callback_id, held * 1000, self.threshold)
