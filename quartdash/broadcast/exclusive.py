"""``run_exclusive``: one producer for all workers.

Under ``hypercorn -w 4`` every worker runs the app's startup code, so a
producer started there would run four times and publish four interleaved
streams. ``run_exclusive(name, produce)`` runs ``produce()`` in one worker
at a time: the one holding a lease on ``name`` (a Redis key with a TTL,
renewed every ``ttl / 3`` s; in-process: trivially this process). If that
worker dies, another one takes over within about ``ttl`` seconds. If Redis
restarts empty, the holder takes the lease again on its next renewal and
keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .hub import Broadcast

log = logging.getLogger("quartdash.broadcast")

T = TypeVar("T")


async def run_exclusive(
    name: str,
    func: Callable[..., Awaitable[T]],
    *args: Any,
    ttl: float = 10.0,
    hub: Broadcast | None = None,
) -> T:
    """Run ``await func(*args)`` in exactly one worker at a time; wait for the
    lease in the others. Returns what ``func`` returns, raises what it raises.

    The holder stops ``func`` (cancels it) if it cannot renew the lease for
    ``ttl`` seconds, or finds it taken by another worker, and then competes
    for the lease again. Cancel the call to give the lease up.
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if hub is None:
        from . import default_hub

        hub = default_hub()
    token = uuid.uuid4().hex
    loop = asyncio.get_running_loop()
    while True:
        backend = hub.backend()
        if await backend.lease(name, token, ttl) is not True:
            await asyncio.sleep(ttl / 3 * random.uniform(0.8, 1.2))
            continue
        log.info("broadcast: this worker runs %r", name)
        task = asyncio.ensure_future(func(*args))
        renewed = loop.time()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=ttl / 3)
                if done:
                    return task.result()
                held = await backend.lease(name, token, ttl)
                if held is True:
                    renewed = loop.time()
                elif held is False or loop.time() - renewed >= ttl:
                    log.warning("broadcast: lost the lease on %r; stopping it here", name)
                    break
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=ttl)
            await backend.release(name, token)
