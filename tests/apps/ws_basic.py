"""The seed's WebSocket-callback examples as one test app, plus probes for the protocol tests.

Serve with ``hypercorn tests.apps.ws_basic:asgi`` or drive in-process with
``DashClient(tests.apps.ws_basic.app)``.

Per-callback WebSocket (``websocket_callbacks`` is off): every WebSocket
callback says ``websocket=True``; ``update_dropdown`` is plain HTTP.

Server-side observations go to ``EVENTS`` (module level), read over HTTP at
``GET /status?renderer=<id>`` (``{"events": [...]}``), so a test can see a
callback's cleanup after its connection is gone. Each event names the
renderer it belongs to, so tests sharing one server stay apart.

Timing: ``WS_TICK`` (env, seconds, default 0.02) replaces the seed's
one-second sleeps so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from typing import Any

from dash import ALL, MATCH, Input, Output, State, ctx, dcc, html, set_props
from quart import jsonify, request

from quartdash import Dash

TICK = float(os.environ.get("WS_TICK", "0.02"))

EVENTS: list[dict[str, Any]] = []
_events_lock = threading.Lock()  # sync callbacks record from worker threads
_instances = itertools.count(1)


def record(event: str, renderer: str | None, **details: Any) -> None:
    with _events_lock:
        EVENTS.append({"event": event, "renderer": renderer, "t": time.monotonic(), **details})


def _renderer_id() -> str | None:
    ws = ctx.websocket
    return ws.renderer_id if ws is not None else None


app = Dash(__name__)
asgi = app.asgi

app.layout = html.Div([
    # the seed's countdown
    html.Button("Start Countdown", id="start-btn"),
    html.Div(id="countdown-display", children="Ready"),
    # the seed's greeting (get_prop)
    dcc.Input(id="name-input", placeholder="Type your name..."),
    html.Button("Start Greeting", id="greet-btn"),
    html.Div(id="greeting-output"),
    # the seed's per-callback example: an HTTP dropdown
    dcc.Dropdown(id="my-dropdown", options=["Option A", "Option B", "Option C"],
                 value="Option A"),
    html.Div(id="dropdown-output"),
    # persistent callback target
    html.Div(id="live"),
    # probes
    html.Button(id="probe-btn"), dcc.Input(id="probe-in"), html.Div(id="probe-out"),
    html.Button(id="task-btn"), html.Div(id="task-status"), html.Div(id="task-progress"),
    html.Button(id="close-btn"), html.Div(id="close-status"),
    html.Button(id="burst-btn"), html.Div(id="burst-out"),
    *[html.Div(id=f"burst-{i}") for i in range(5)],
    html.Button(id="transport-btn"), html.Div(id="transport-out"),
    html.Button(id="multi-btn"), html.Div(id="multi-a"), html.Div(id="multi-b"),
    html.Button(id={"type": "item-btn", "index": 1}),
    html.Div(id={"type": "item-out", "index": 1}),
    dcc.Input(id={"type": "item-in", "index": 1}),
    html.Div(id="item-total"),
])


@app.callback(Output("countdown-display", "children"), Input("start-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def countdown(n_clicks: int) -> str:
    for i in range(10, 0, -1):
        set_props("countdown-display", {"children": f"Countdown: {i}"})
        await asyncio.sleep(TICK)
    return "Done!"


@app.callback(Output("greeting-output", "children"), Input("greet-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def greet(n_clicks: int) -> str:
    ws = ctx.websocket
    name = await ws.get_prop("name-input", "value")
    set_props("greeting-output", {"children": f"Processing for {name}..."})
    await asyncio.sleep(TICK)
    return f"Hello, {name}!"


@app.callback(Output("dropdown-output", "children"), Input("my-dropdown", "value"))
def update_dropdown(value: str) -> str:
    return f"Selected: {value}"


@app.callback(persistent=True, websocket=True)
async def live() -> None:
    ws = ctx.websocket
    renderer = ws.renderer_id
    instance = next(_instances)
    record("persistent_started", renderer, instance=instance)
    tick = 0
    try:
        while not ws.is_shutdown:
            tick += 1
            set_props("live", {"children": f"{instance}:{tick}"})
            await asyncio.sleep(TICK)
    finally:
        record("persistent_stopped", renderer, instance=instance, shutdown=ws.is_shutdown)


@app.callback(Output("probe-out", "children"), Input("probe-btn", "n_clicks"),
              State("probe-in", "placeholder"), prevent_initial_call=True, websocket=True)
async def probe(n_clicks: int, timeout: str | None) -> str:
    """get_prop round trip; the get_prop timeout comes from the State (default 2 s)."""
    ws = ctx.websocket
    try:
        value = await ws.get_prop("probe-in", "value", timeout=float(timeout or 2))
    except TimeoutError as error:
        return f"TimeoutError: {error}"
    return f"got {value!r}"


@app.callback(Output("task-status", "children"), Input("task-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def long_task(n_clicks: int) -> str:
    """The seed's event-triggered loop: runs until cancelled, then cleans up."""
    renderer = _renderer_id()
    record("task_started", renderer)
    try:
        while True:
            set_props("task-progress", {"children": "Working..."})
            await asyncio.sleep(TICK)
    except asyncio.CancelledError:
        await asyncio.sleep(0)  # cleanup may itself await
        record("task_cancelled", renderer)
    return "Disconnected"


@app.callback(Output("close-status", "children"), Input("close-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def close_connection(n_clicks: int) -> str:
    ws = ctx.websocket
    renderer = ws.renderer_id
    await ws.close(code=4001, reason="Policy violation")
    record("after_close", renderer, is_shutdown=ws.is_shutdown)
    await asyncio.sleep(TICK)  # post-close cleanup that awaits
    set_props("close-status", {"children": "never reaches the client"})
    record("close_cleanup_done", renderer)
    return "closed"


@app.callback(Output("burst-out", "children"), Input("burst-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def burst(n_clicks: int) -> str:
    """Five set_props with no await in between: one batch frame with the response."""
    for i in range(5):
        set_props(f"burst-{i}", {"children": i})
    return "burst done"


@app.callback(Output("transport-out", "children"), Input("transport-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def transport(n_clicks: int) -> str:
    return "websocket" if ctx.websocket is not None else "http (ctx.websocket is None)"


@app.callback(Output("multi-a", "children"), Output("multi-b", "children"),
              Input("multi-btn", "n_clicks"), prevent_initial_call=True, websocket=True)
async def multi(n_clicks: int) -> tuple[str, str]:
    return f"a{n_clicks}", f"b{n_clicks}"


@app.callback(Output({"type": "item-out", "index": MATCH}, "children"),
              Input({"type": "item-btn", "index": MATCH}, "n_clicks"),
              State({"type": "item-in", "index": MATCH}, "value"),
              prevent_initial_call=True, websocket=True)
async def item(n_clicks: int, value: str | None) -> str:
    index = ctx.triggered_id["index"]
    return f"item {index}: {value} x{n_clicks}"


@app.callback(Output("item-total", "children"),
              Input({"type": "item-in", "index": ALL}, "value"), websocket=True)
async def item_total(values: list[str | None]) -> str:
    return "+".join(v or "" for v in values) + f" ({len(values)})"


@asgi.get("/status")
async def status() -> Any:
    renderer = request.args.get("renderer")
    with _events_lock:
        events = [e for e in EVENTS if renderer is None or e["renderer"] == renderer]
    return jsonify({"events": events})
