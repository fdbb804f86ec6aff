"""Run one Dash callback, natively async.

``async def`` callbacks are awaited in the calling task: no thread, no nested
event loop. Plain ``def`` callbacks run in the app's bounded thread pool, so
a blocking callback never stalls the event loop (and so other users); the
pool's size bounds how many run at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import dash

from . import dash_internals

__all__ = ["invoke", "prepare_callback", "run_callback", "submit"]


def prepare_callback(
    dash_app: dash.Dash, body: dict[str, Any], ctx: dash_internals.AttributeDict
) -> tuple[Callable[[], Any], bool]:
    """Bind the request ``body`` to its callback: ``(call, is_async)``.

    Everything that can fail here is the request's fault (an unknown
    callback, inputs that do not fit it); the callback itself has not run.
    """
    dash_internals.set_current_app(dash_app)
    call, func = dash_internals.prepare_callback(dash_app, body, ctx)
    return call, inspect.iscoroutinefunction(func)


async def submit(executor: ThreadPoolExecutor, func: Callable[[], Any],
                 slots: asyncio.Semaphore | None = None) -> Future[Any]:
    """Start ``func`` in the pool, holding one of ``slots`` (a connection's
    share of the pool) until its thread is done, even when the awaiting task
    is cancelled first: a thread cannot be interrupted, so a cancelled (or
    superseded) ``def`` callback keeps its slot until it really returns."""
    if slots is None:
        return executor.submit(func)
    loop = asyncio.get_running_loop()
    await slots.acquire()
    try:
        future = executor.submit(func)
    except BaseException:
        slots.release()
        raise

    def release(_: Future[Any]) -> None:
        try:
            loop.call_soon_threadsafe(slots.release)
        except RuntimeError:  # the loop is closed (server exit): nothing waits for it
            return

    future.add_done_callback(release)
    return future


async def invoke(call: Callable[[], Any], is_async: bool, executor: ThreadPoolExecutor,
                 slots: asyncio.Semaphore | None = None) -> str:
    """Run a prepared callback; return Dash's JSON response text.

    ``slots``: for a ``def`` callback, the connection's share of the pool.
    Raises what the callback raises (``PreventUpdate`` included).
    """
    if is_async:
        return cast(str, await call())
    # Sync: the worker thread gets a copy of this task's context, so ctx,
    # set_props and get_app() work there exactly as on the loop.
    context = contextvars.copy_context()
    future = await submit(executor, lambda: context.run(call), slots)
    result = await asyncio.wrap_future(future)
    if inspect.isawaitable(result):  # a def that returned a coroutine
        result = await result
    return cast(str, result)


async def run_callback(
    dash_app: dash.Dash,
    body: dict[str, Any],
    ctx: dash_internals.AttributeDict,
    executor: ThreadPoolExecutor,
) -> str:
    """Run the callback ``body`` names; return Dash's JSON response text.

    Raises what the callback raises (``PreventUpdate`` included), and
    ``KeyError`` for a callback id the app does not have.
    """
    call, is_async = prepare_callback(dash_app, body, ctx)
    return await invoke(call, is_async, executor)
