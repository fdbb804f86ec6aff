"""Baseline: a bare Quart websocket that speaks just enough of the renderer's
protocol and pushes the same JSON frames as the Dash apps, served by hypercorn.

    hypercorn raw_quart_app:asgi

No Dash: no callback machinery, no queue.  The push path is the callback task
calling ``websocket.send`` directly.  It answers:
  * ``renderer_joined`` / ``callback_request`` for the persistent callback:
    start that renderer's pusher (once per renderer);
  * ``callback_request`` for ``echo-out.children``: n_clicks get_prop round
    trips, then a ``callback_response`` like Dash's;
  * ``get_props_response``: resolves the pending round trip;
  * ``heartbeat``: ``heartbeat_ack``.
Plus ``GET /_dash-dependencies`` (so the load generator finds the callback
ids the same way), ``POST /_dash-update-component`` for the trivial HTTP
callback and ``GET /_bench/stats``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from urllib.parse import urlparse

import _common as common
import orjson
from quart import Quart, Response, request, websocket

PERSISTENT_ID = "..raw-live.."
ECHO_ID = "echo-out.children"
HTTP_ID = "http-out.children"
FIGURE_ID = "fig.figure"

asgi = Quart(__name__)

DEPENDENCIES = [
    {
        "output": PERSISTENT_ID,
        "inputs": [],
        "state": [],
        "clientside_function": None,
        "prevent_initial_call": False,
        "no_output": True,
        "websocket": True,
        "persistent": True,
    },
    {
        "output": ECHO_ID,
        "inputs": [{"id": "btn", "property": "n_clicks"}],
        "state": [],
        "clientside_function": None,
        "prevent_initial_call": True,
        "no_output": False,
        "websocket": True,
        "persistent": False,
    },
    *({
        "output": output,
        "inputs": [{"id": button, "property": "n_clicks"}],
        "state": [],
        "clientside_function": None,
        "prevent_initial_call": False,
        "no_output": False,
        "websocket": False,
        "persistent": False,
    } for output, button in ((HTTP_ID, "http-btn"), (FIGURE_ID, "fig-btn"))),
]


def _json(obj: object) -> Response:
    return Response(orjson.dumps(obj), content_type="application/json")


@asgi.route("/_dash-dependencies")
async def dependencies():
    return _json(DEPENDENCIES)


@asgi.route("/_dash-update-component", methods=["POST"])
async def update_component():
    body = orjson.loads(await request.get_data())
    n = body["inputs"][0].get("value")
    common.STATS["http"] += 1
    if body["output"] == FIGURE_ID:  # what a Quart developer would write: orjson, numpy on
        figure = common.figure(n)
        return Response(orjson.dumps({"multi": True, "response": {"fig": {"figure": figure}}},
                                     default=lambda obj: obj.to_plotly_json(),
                                     option=orjson.OPT_SERIALIZE_NUMPY),
                        content_type="application/json")
    return _json({"multi": True, "response": {"http-out": {"children": f"clicked {n}"}}})


@asgi.route("/_bench/stats")
async def bench_stats():
    return {**common.stats(), "time": time.time()}


@asgi.websocket("/_dash-ws-callback")
async def ws_callback():
    origin = websocket.headers.get("origin")
    if not origin or urlparse(origin).netloc != websocket.headers.get("host"):
        await websocket.close(4003, "Origin not allowed")
        return
    await websocket.accept()
    ws = websocket._get_current_object()
    closed = False
    pushers: dict[str, asyncio.Task] = {}
    tasks: set[asyncio.Task] = set()
    pending: dict[str, asyncio.Future] = {}
    ids = itertools.count(1)

    async def send(msg: dict) -> None:
        await ws.send(orjson.dumps(msg).decode())

    async def push(renderer_id: str) -> None:
        async for value in common.values(lambda: closed, renderer=renderer_id):
            await send(
                {
                    "type": "set_props",
                    "rendererId": renderer_id,
                    "payload": {"componentId": common.LIVE_ID, "props": {"children": value}},
                }
            )

    async def echo(renderer_id: str, request_id: str, n_clicks: object) -> None:
        loop = asyncio.get_running_loop()
        value = None
        for _ in range(common.getprop_count(n_clicks)):
            rid = f"g{next(ids)}"
            fut = loop.create_future()
            pending[rid] = fut
            await send(
                {
                    "type": "get_props_request",
                    "rendererId": renderer_id,
                    "requestId": rid,
                    "payload": {"componentId": "inp", "properties": ["value"]},
                }
            )
            try:
                value = (await asyncio.wait_for(fut, 30.0) or {}).get("value")
            finally:
                pending.pop(rid, None)
            common.STATS["getprops"] += 1
        await send(
            {
                "type": "callback_response",
                "rendererId": renderer_id,
                "requestId": request_id,
                "payload": {
                    "status": "ok",
                    "data": {"multi": True, "response": {"echo-out": {"children": value}}},
                },
            }
        )

    def spawn(coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def start_pusher(renderer_id: str) -> None:
        if renderer_id not in pushers:
            pushers[renderer_id] = spawn(push(renderer_id))

    try:
        while True:
            data = await ws.receive()
            msgs = orjson.loads(data)
            for msg in msgs if isinstance(msgs, list) else [msgs]:
                kind = msg.get("type")
                if kind == "heartbeat":
                    await ws.send('{"type":"heartbeat_ack"}')
                elif kind == "renderer_joined":
                    start_pusher(msg.get("rendererId", ""))
                elif kind == "callback_request":
                    output = msg.get("payload", {}).get("output")
                    if output == PERSISTENT_ID:
                        start_pusher(msg.get("rendererId", ""))
                    elif output == ECHO_ID:
                        inputs = msg["payload"].get("inputs") or [{}]
                        spawn(echo(msg["rendererId"], msg["requestId"], inputs[0].get("value")))
                elif kind == "get_props_response":
                    fut = pending.get(msg.get("requestId"))
                    if fut is not None and not fut.done():
                        fut.set_result(msg.get("payload"))
    finally:
        closed = True
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
