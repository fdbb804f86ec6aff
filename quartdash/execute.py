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
from typing import TYPE_CHECKING, Any, cast

from dash._get_app import app_context
from dash._utils import AttributeDict, inputs_to_dict

if TYPE_CHECKING:
    import dash


def websocket_context(
    body: dict[str, Any],
    *,
    handle: Any,
    response: Any,
    connection: dict[str, Any],
) -> AttributeDict:
    """The callback context (``dash.ctx``) for a callback run over a WebSocket.

    Mirrors what Dash builds for an HTTP request, with ``dash_websocket`` set so
    ``ctx.websocket`` and ``set_props`` use the socket. ``connection`` carries
    the handshake's cookies, headers, path, remote address and origin.
    """
    ctx = AttributeDict({})
    ctx.inputs_list = body.get("inputs", [])
    ctx.states_list = body.get("state", [])
    ctx.outputs_list = body.get("outputs", [])
    ctx.input_values = inputs_to_dict(ctx.inputs_list)
    ctx.state_values = inputs_to_dict(ctx.states_list)
    ctx.triggered_inputs = [
        {"prop_id": x, "value": ctx.input_values.get(x)} for x in body.get("changedPropIds", [])
    ]
    ctx.dash_response = response
    ctx.updated_props = {}
    ctx.dash_websocket = handle
    ctx.update(connection)
    return ctx


def prepare_callback(
    dash_app: dash.Dash, body: dict[str, Any], ctx: AttributeDict
) -> tuple[Callable[[], Any], bool]:
    """Bind the request ``body`` to its callback: ``(call, is_async)``.

    Everything that can fail here is the request's fault (an unknown
    callback, inputs that do not fit it); the callback itself has not run.
    """
    app_context.set(dash_app)
    func = dash_app._prepare_callback(ctx, body)
    args = dash_app._inputs_to_vals(ctx.inputs_list + ctx.states_list)
    call = dash_app._execute_callback(func, args, ctx.outputs_list, ctx)
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
    ctx: AttributeDict,
    executor: ThreadPoolExecutor,
) -> str:
    """Run the callback ``body`` names; return Dash's JSON response text.

    Raises what the callback raises (``PreventUpdate`` included), and
    ``KeyError`` for a callback id the app does not have.
    """
    call, is_async = prepare_callback(dash_app, body, ctx)
    return await invoke(call, is_async, executor)


def is_async_callback(dash_app: dash.Dash, callback_id: str) -> bool:
    spec = dash_app.callback_map.get(callback_id) or {}
    return inspect.iscoroutinefunction(spec.get("callback"))
