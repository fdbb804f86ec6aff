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
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import dash

from . import dash_internals

__all__ = ["invoke", "prepare_callback", "run_callback"]


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


async def invoke(call: Callable[[], Any], is_async: bool, executor: ThreadPoolExecutor) -> str:
    """Run a prepared callback; return Dash's JSON response text.

    Raises what the callback raises (``PreventUpdate`` included).
    """
    if is_async:
        return cast(str, await call())
    # Sync: the worker thread gets a copy of this task's context, so ctx,
    # set_props and get_app() work there exactly as on the loop.
    context = contextvars.copy_context()
    result = await asyncio.get_running_loop().run_in_executor(executor, context.run, call)
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
