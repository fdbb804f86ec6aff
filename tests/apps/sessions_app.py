"""The app behind tests/test_live_sessions_cluster.py: identity, revoke and
presence across ``hypercorn -w 2`` workers sharing one Redis
(``QUARTDASH_BROADCAST_URL``).

* The connect hook takes the identity from the ``user`` cookie (a stand-in
  for a real login: any cookie or header check works the same), with the
  ``X-Role`` header as its ``role`` claim (headers are not part of the
  resume binding: only the identity is), and counts every connection
  attempt per user in Redis, so a test sees reconnects on any worker.
* Every tab pushes its worker's pid to ``worker`` and tracks itself on the
  ``room`` topic with that pid; ``watch`` (on a click) pushes the room's
  presence events as they come.
* HTTP: ``POST /revoke?user=U`` (``app.live.revoke``), ``GET /presence``,
  ``GET /sessions`` (this worker's ``list_sessions()``), ``GET /connects``,
  ``GET /relay`` (this worker's resume relay counters); the last two take
  ``?hold=`` (tests/apps/_workers.py).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis
from dash import Input, Output, Patch, callback, ctx, dcc, html, set_props
from quart import request

from quartdash import Dash, Identity, broadcast
from tests.apps._workers import allow_hold

room = broadcast.Topic("room")
REDIS_URL = os.environ.get("QUARTDASH_BROADCAST_URL", "")
COUNTER = "livetest:connects"

app = Dash(__name__, websocket_callbacks=True)
app.layout = html.Div([
    html.Div(id="worker"),
    html.Button("who", id="who"),
    html.Div(id="me"),
    html.Button("watch", id="watch"),
    dcc.Store(id="events", data=[]),
    html.Div(id="watching"),
])

_redis: Any = None


def counter() -> Any:
    global _redis
    if _redis is None:
        _redis = aioredis.Redis.from_url(REDIS_URL)
    return _redis


@app.websocket_connect
async def identify(ws: Any) -> Any:
    user = ws.cookies.get("user")
    if REDIS_URL:
        await counter().hincrby(COUNTER, user or "-", 1)
    if not user:
        return (4001, "sign in")
    return Identity(user, role=ws.headers.get("X-Role", "user"))


@callback(persistent=True)
async def be_here() -> None:
    set_props("worker", {"children": os.getpid()})
    await room.track({"pid": os.getpid()})


@callback(Output("me", "children"), Input("who", "n_clicks"), prevent_initial_call=True)
async def who(n: int) -> str:
    identity = ctx.websocket.identity
    return f"{identity.id} ({identity.claims['role']})"


@callback(Output("watching", "children"), Input("watch", "n_clicks"),
          prevent_initial_call=True)
async def watch(n: int) -> str:
    async with room.presence_events() as events:
        set_props("watching", {"children": "watching"})
        async for event in events:
            log = Patch()
            log.append({"kind": event.kind, "user": event.entry.identity.id,
                        "pid": event.entry.meta.get("pid"), "tab": event.entry.tab})
            set_props("events", {"data": log})
    return "done"


asgi = app.asgi
allow_hold(asgi, "/sessions", "/relay")


@asgi.post("/revoke")
async def revoke() -> dict[str, Any]:
    started = asyncio.get_running_loop().time()
    closed = await app.live.revoke(request.args["user"])
    return {"worker": os.getpid(), "closed": closed,
            "elapsed": asyncio.get_running_loop().time() - started}


@asgi.get("/presence")
async def presence() -> dict[str, Any]:
    entries = await room.presence()
    return {"worker": os.getpid(), "entries": [entry.to_json() for entry in entries]}


@asgi.get("/sessions")
async def sessions() -> dict[str, Any]:
    return {"worker": os.getpid(), "sessions": [s.to_json() for s in app.live.list_sessions()]}


@asgi.get("/relay")
async def relay() -> dict[str, Any]:
    from quartdash.broadcast.relay import relay_stats

    return {"worker": os.getpid(), **relay_stats()}


@asgi.get("/connects")
async def connects() -> dict[str, Any]:
    raw = await counter().hgetall(COUNTER)
    return {k.decode(): int(v) for k, v in raw.items()}
