"""Streaming callbacks: a generator callback's yields, over the WebSocket and over HTTP.

A callback written as an ``async def`` generator (Dash 4.5's spelling) or a
plain ``def`` generator streams: every ``yield`` has the shape of a return
value (one value per ``Output``; ``no_update`` and ``Patch`` work per
output), and the run ends when the generator does.

**Over the WebSocket** each yield reaches the page at once: its outputs go
out as ``set_props`` pushes to the concrete ids of the request's outputs
(in order; a ``Patch`` applies incrementally), then one final
``callback_response`` with an empty ``response`` settles the request. That
is what the installed dash-renderer (4.4) can consume: it settles a request
on its first ``callback_response``, so Dash 4.5's ``stream: true`` responses
would show only the first yield; and the final response must not repeat the
last value (a ``Patch`` would apply twice). An ``async def`` generator runs
in the callback's task (cancelled with it: tab closed, connection gone,
superseded by a newer run); a ``def`` generator runs each step in the app's
thread pool and is closed (``GeneratorExit`` at its ``yield``) once the step
in flight when it was cancelled returns.

**Over HTTP** (a client without the WebSocket) the renderer cannot read a
stream, so the callback runs to its end and the response carries, for each
output, the combined effect of all its yields: the last full value with the
``Patch`` yields after it applied, or one ``Patch`` made of all the patches.
The page gets the same final state, without the intermediate ones. Never a
hang: the request is answered when the generator ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import orjson
from dash import Patch
from dash.exceptions import PreventUpdate

from ..wire import protocol
from . import dash_internals
from .dash_internals import BoundStream
from .execute import submit

__all__ = ["EMPTY_RESPONSE", "apply_patch", "compose", "run_http", "run_websocket"]

log = logging.getLogger("quartdash")

EMPTY_RESPONSE: Final = b'{"multi":true,"response":{}}'
"""The final response of a stream over the WebSocket: its values were pushed."""

_DONE: Final = object()
_NOTHING: Final = object()
PATCH_MARK: Final = "__dash_patch_update"

Emit = Callable[[dict[str, Any]], None]


async def run_websocket(stream: BoundStream, handle: Any, executor: ThreadPoolExecutor,
                        slots: asyncio.Semaphore | None = None) -> bytes | None:
    """Run a streaming callback over the WebSocket: each yield's outputs are
    pushed to the tab at once. Returns the final response data, or None when
    no yield updated anything (``prevent_update``)."""
    pushed = False

    def emit(response: dict[str, Any]) -> None:
        nonlocal pushed
        for component_id, props in (response.get("response") or {}).items():
            for prop, value in props.items():
                handle.push_output(component_id, prop, value, isinstance(value, Patch))
                pushed = True

    await _drive(stream, emit, executor, slots)
    return EMPTY_RESPONSE if pushed else None


async def run_http(stream: BoundStream, executor: ThreadPoolExecutor) -> str:
    """Run a streaming callback to its end for an HTTP request; return Dash's
    callback JSON with every output's combined value. Raises ``PreventUpdate``
    when nothing was updated."""
    outputs: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}

    def emit(response: dict[str, Any]) -> None:
        for component_id, props in (response.get("response") or {}).items():
            combined = outputs.setdefault(component_id, {})
            for prop, value in props.items():
                combined[prop] = compose(combined.get(prop, _NOTHING), value)
        if "dist" in response:
            extra["dist"] = response["dist"]

    await _drive(stream, emit, executor, None)
    side = dict(stream.context.get("updated_props") or {})
    if not outputs and not side:
        raise PreventUpdate
    final: dict[str, Any] = {"multi": True, "response": outputs, **extra}
    if side:
        final["sideUpdate"] = side
    return str(dash_internals.to_json(final))


async def _drive(stream: BoundStream, emit: Emit, executor: ThreadPoolExecutor,
                 slots: asyncio.Semaphore | None) -> None:
    """Iterate the generator, handing each yield (as Dash's callback JSON) to
    ``emit``. ``PreventUpdate`` ends it quietly; another error goes to the
    callback's ``on_error`` handler if it has one (its value is the last
    yield), else propagates."""
    try:
        if stream.is_async:
            await _drive_async(stream, emit)
        else:
            await _drive_sync(stream, emit, executor, slots)
    except PreventUpdate:
        return
    except Exception as error:
        if stream.on_error is None:
            raise
        value = stream.on_error(error)
        if value is not None:
            emit(stream.frame(value))


async def _drive_async(stream: BoundStream, emit: Emit) -> None:
    generator = stream.start()
    try:
        while True:
            try:
                value = await generator.__anext__()
            except StopAsyncIteration:
                return
            emit(stream.frame(value))
    finally:
        # Left early (a bad yield, cancellation between steps): its cleanup runs now.
        await generator.aclose()


async def _drive_sync(stream: BoundStream, emit: Emit, executor: ThreadPoolExecutor,
                      slots: asyncio.Semaphore | None) -> None:
    # Each step runs in the pool with this task's context (dash.ctx,
    # set_props), one step at a time; between steps it holds no thread.
    context = contextvars.copy_context()
    generator = context.run(stream.start)

    def step() -> Any:
        return next(generator, _DONE)

    in_flight: Future[Any] | None = None
    finished = False
    try:
        while True:
            # The slot is held until the step's thread returns, even if we are
            # cancelled meanwhile (execute.submit).
            in_flight = await submit(executor, lambda: context.run(step), slots)
            value = await asyncio.wrap_future(in_flight)
            in_flight = None
            if value is _DONE:
                finished = True
                return
            emit(stream.frame(value))
    finally:
        if not finished:
            _close_later(executor, context, generator, in_flight)


def _close_later(executor: ThreadPoolExecutor, context: contextvars.Context, generator: Any,
                 in_flight: Future[Any] | None) -> None:
    """Close a ``def`` generator that was left early, in the pool, once the
    step that may still be running returns (a thread cannot be interrupted)."""
    def close(_: Any = None) -> None:
        try:
            executor.submit(context.run, generator.close)
        except RuntimeError:  # the pool is shut down (server exit): nothing runs its cleanup
            log.debug("a streaming def callback could not be closed: the pool is shut down")

    if in_flight is not None and not in_flight.done():
        in_flight.add_done_callback(close)
    else:
        close()


# --- combining yields for HTTP -----------------------------------------------------------------


def _is_patch(value: Any) -> bool:
    return isinstance(value, Patch) or (isinstance(value, dict) and PATCH_MARK in value)


def _operations(value: Any) -> list[dict[str, Any]]:
    data = value.to_plotly_json() if isinstance(value, Patch) else value
    return list(data.get("operations") or [])


def compose(previous: Any, value: Any) -> Any:
    """The value that has the effect of ``previous`` then ``value`` on a prop
    (``previous`` is ``_NOTHING`` when it had none in this run)."""
    if not _is_patch(value) or previous is _NOTHING:
        return value
    if _is_patch(previous):
        return {PATCH_MARK: PATCH_MARK, "operations": _operations(previous) + _operations(value)}
    return apply_patch(orjson.loads(protocol.dumps(previous)), _operations(value))


_MISSING: Final = object()


def _get(obj: Any, key: Any) -> Any:
    if isinstance(obj, list) and isinstance(key, int) and 0 <= key < len(obj):
        return obj[key]
    if isinstance(obj, dict) and key in obj:
        return obj[key]
    return _MISSING


def _get_path(obj: Any, path: list[Any]) -> Any:
    for key in path:
        obj = _get(obj, key)
        if obj is _MISSING:
            return _MISSING
    return obj


def _index(key: Any, container: Any) -> Any:
    """A negative index counts from the end of the list it indexes."""
    if isinstance(key, int) and key < 0 and isinstance(container, list):
        return len(container) + key
    return key


def _assoc_path(path: list[Any], value: Any, obj: Any) -> Any:
    if not path:
        return value
    key, rest = path[0], path[1:]
    if rest:
        inner = _get(obj, key)
        if inner is _MISSING:
            inner = [] if isinstance(rest[0], int) else {}
        value = _assoc_path(rest, value, inner)
    if isinstance(key, int) and isinstance(obj, list):
        copy = list(obj)
        copy.extend([None] * (key + 1 - len(copy)))
        copy[key] = value
        return copy
    copy_dict = dict(obj) if isinstance(obj, dict) else {}
    copy_dict[key] = value
    return copy_dict


def _dissoc_path(path: list[Any], obj: Any) -> Any:
    if not path:
        return obj
    key, rest = path[0], path[1:]
    if rest:
        inner = _get(obj, key)
        return obj if inner is None or inner is _MISSING else _assoc_path(
            [key], _dissoc_path(rest, inner), obj)
    if isinstance(obj, list) and isinstance(key, int):
        return obj[:key] + obj[key + 1:] if 0 <= key < len(obj) else list(obj)
    if isinstance(obj, dict):
        return {k: v for k, v in obj.items() if k != key}
    return obj


def _empty(value: Any) -> Any:
    return type(value)() if isinstance(value, (list, dict, str)) else None


_HANDLERS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "Merge": lambda prev, value: {**prev, **value},
    "Extend": lambda prev, value: list(prev) + list(value),
    "Append": lambda prev, value: [*prev, value],
    "Prepend": lambda prev, value: [value, *prev],
    "Add": lambda prev, value: prev + value,
    "Sub": lambda prev, value: prev - value,
    "Mul": lambda prev, value: prev * value,
    "Div": lambda prev, value: prev / value,
    "Clear": lambda prev, value: _empty(prev),
    "Reverse": lambda prev, value: prev[::-1],
    "Remove": lambda prev, value: [item for item in prev if item != value],
}


def apply_patch(value: Any, operations: list[dict[str, Any]]) -> Any:
    """Apply ``Patch`` operations to a JSON value the way dash-renderer does
    (its ``handlePatch``). Raises ``ValueError`` for an operation it cannot apply."""
    for operation in operations:
        kind = operation.get("operation")
        params = operation.get("params") or {}
        location: list[Any] = []
        for key in operation.get("location") or []:
            location.append(_index(key, _get_path(value, location)))
        try:
            if kind == "Assign":
                value = _assoc_path(location, params.get("value"), value)
            elif kind == "Delete":
                value = _dissoc_path(location, value)
            elif kind == "Insert":
                previous = _get_path(value, location)
                index = _index(params.get("index"), previous)
                value = _assoc_path(location, [*previous[:index], params.get("value"),
                                               *previous[index:]], value)
            elif kind in _HANDLERS:
                previous = _get_path(value, location)
                if previous is _MISSING:
                    raise TypeError("nothing at this location")
                value = _assoc_path(location, _HANDLERS[kind](previous, params.get("value")),
                                    value)
            else:
                raise ValueError(f"unknown Patch operation {kind!r}")
        except (TypeError, KeyError, IndexError, ZeroDivisionError) as error:
            raise ValueError(f"cannot apply Patch operation {kind} at {location}: "
                             f"{error}") from error
    return value
