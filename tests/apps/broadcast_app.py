"""The app behind tests/test_broadcast*.py: topic subscribers, members, and
HTTP routes that publish (what a Quart route or a background task would do).

Every tab runs ``follow``: it subscribes to ``feed`` and appends each message
to the ``log`` store with a ``Patch`` (patches are never coalesced, so the
client sees every message, in order). ``slow`` (on a click) is a subscriber
that takes ``SLOW_DELAY`` s per message with a 4-message buffer.
"""

from __future__ import annotations

import asyncio
import os
import time

from dash import Input, Output, Patch, callback, dcc, html, set_props
from quart import request

from quartdash import Dash, broadcast

feed = broadcast.Topic("feed")
room = broadcast.Topic("room")
SLOW_DELAY = 0.25

app = Dash(__name__, websocket_callbacks=True)
app.layout = html.Div([
    dcc.Store(id="log", data=[]),
    html.Div(id="state"),
    html.Div(id="banner"),
    html.Div(id="room-state"),
    html.Div(id="worker"),
    html.Button("slow", id="slow-btn"),
    html.Div(id="slow-out"),
    html.Button("join", id="join-btn"),
    html.Div(id="join-out"),
    html.Button("sync", id="sync-btn"),
    html.Div(id="sync-out"),
])

STATS = {"following": 0, "clean_ends": 0, "cancelled": 0, "slow_seen": 0, "slow_dropped": 0}


@callback(persistent=True)
async def follow():
    set_props("worker", {"children": os.getpid()})
    STATS["following"] += 1
    try:
        async for message in feed.subscribe(maxsize=10_000):
            log = Patch()
            log.append(message)
            set_props("log", {"data": log})
        STATS["clean_ends"] += 1  # the iteration ended by itself on shutdown
    except asyncio.CancelledError:
        STATS["cancelled"] += 1
        raise
    finally:
        STATS["following"] -= 1


@callback(Output("slow-out", "children"), Input("slow-btn", "n_clicks"),
          prevent_initial_call=True)
async def slow(n_clicks):
    subscription = feed.subscribe(maxsize=4)
    seen = []
    async for message in subscription:
        seen.append(message)
        STATS["slow_seen"] += 1
        STATS["slow_dropped"] = subscription.dropped
        set_props("slow-out", {"children": {"seen": seen, "dropped": subscription.dropped}})
        if message == "stop":
            break
        await asyncio.sleep(SLOW_DELAY)
    return {"seen": seen, "dropped": subscription.dropped}


@callback(Output("join-out", "children"), Input("join-btn", "n_clicks"),
          prevent_initial_call=True)
async def join_room(n_clicks):
    await room.join()
    return "joined"


@callback(Output("sync-out", "children"), Input("sync-btn", "n_clicks"),
          prevent_initial_call=True)
def publish_from_a_thread(n_clicks):
    # A plain def callback runs in a worker thread: publish through the loop.
    feed.publish_threadsafe(f"from a thread {n_clicks}").result(timeout=5)
    return "sent"


asgi = app.asgi


@asgi.post("/publish")
async def publish():
    body = await request.get_json()
    started = time.perf_counter()
    for message in body["messages"]:
        await feed.publish(message)
    return {"worker": os.getpid(), "elapsed": time.perf_counter() - started}


@asgi.post("/props")
async def props():
    body = await request.get_json()
    started = time.perf_counter()
    if body["to"] == "app":
        await broadcast.set_props(body["component"], body["props"], app=app,
                                  retain=body.get("retain", True))
    else:
        topic = feed if body["to"] == "feed" else room
        await topic.set_props(body["component"], body["props"], retain=body.get("retain", True))
    return {"worker": os.getpid(), "elapsed": time.perf_counter() - started}


@asgi.post("/props-burst")
async def props_burst():
    """``count`` full values for feed's ``state.children`` (they coalesce per tab)."""
    body = await request.get_json()
    started = time.perf_counter()
    for n in range(body["start"], body["start"] + body["count"]):
        await feed.set_props("state", {"children": f"{n}:{body['pad']}"}, retain=False)
    return {"worker": os.getpid(), "elapsed": time.perf_counter() - started}


@asgi.get("/stats")
async def stats():
    return {**broadcast.stats(), **STATS, "sessions": len(app.live.sessions),
            "worker": os.getpid(), "tasks": len(asyncio.all_tasks())}
