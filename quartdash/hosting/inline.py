"""Where a plain ``def`` HTTP callback runs: the thread pool, or the event loop.

A thread hop (submit, wake a worker, hand the GIL over and back, wake the
loop) costs more than a trivial callback does. Running every ``def``
callback on the loop, as Dash's FastAPI backend does, is fast until one of
them blocks and every user of the worker waits. So a callback earns the
loop: it starts in the pool, and once its last :data:`PROMOTE_AFTER` runs
there each took less than the threshold (``inline_threshold``), it runs on
the loop. A run there that takes over :data:`SLOW_FACTOR` times the
threshold sends it back to the pool for good, with one warning: at most one
slow run per callback and process ever holds the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["PROMOTE_AFTER", "SLOW_FACTOR", "InlinePolicy"]

log = logging.getLogger("quartdash")

PROMOTE_AFTER = 16
SLOW_FACTOR = 10


class _Record:
    __slots__ = ("demoted", "fast_runs", "inline")

    def __init__(self) -> None:
        self.fast_runs = 0
        self.inline = False
        self.demoted = False


class InlinePolicy:
    """Decides, per callback id, where its ``def`` function runs; see the module."""

    def __init__(self, threshold: float, executor: ThreadPoolExecutor) -> None:
        self.threshold = threshold
        self.executor = executor
        self._records: dict[str, _Record] = {}

    def runs_inline(self, callback_id: str) -> bool:
        record = self._records.get(callback_id)
        return record is not None and record.inline

    def run_inline(self, callback_id: str, call: Callable[[], Any]) -> Any:
        """``call()`` on the loop, for a callback that :meth:`runs_inline`."""
        record = self._records[callback_id]
        start = time.perf_counter()
        try:
            return call()
        finally:
            self._ran_inline(callback_id, record, time.perf_counter() - start)

    async def run(self, callback_id: str, call: Callable[[], Any]) -> Any:
        """``call()`` where this callback runs now; its result or its exception."""
        record = self._records.get(callback_id)
        if record is None:
            record = self._records[callback_id] = _Record()
        if record.inline:
            return self.run_inline(callback_id, call)
        context = contextvars.copy_context()  # ctx, set_props, get_app() in the thread

        def timed() -> tuple[Any, float]:
            start = time.perf_counter()
            result = context.run(call)
            return result, time.perf_counter() - start

        result, seconds = await asyncio.get_running_loop().run_in_executor(self.executor, timed)
        self._ran_in_pool(record, seconds)
        return result

    def _ran_in_pool(self, record: _Record, seconds: float) -> None:
        if record.demoted or self.threshold <= 0:
            return
        if seconds >= self.threshold:
            record.fast_runs = 0
            return
        record.fast_runs += 1
        if record.fast_runs >= PROMOTE_AFTER:
            record.inline = True

    def _ran_inline(self, callback_id: str, record: _Record, seconds: float) -> None:
        if seconds <= self.threshold * SLOW_FACTOR:
            return
        record.inline = False
        record.demoted = True
        log.warning("callback %s held the event loop for %.1f ms; it runs in the thread "
                    "pool from now on (inline_threshold=%g s)",
                    callback_id, seconds * 1000, self.threshold)
