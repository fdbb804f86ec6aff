"""The app of the streaming, partial-read, event and re-triggering tests
(tests/test_live_features.py at the protocol level, tests/test_live_browser.py
in Chromium).

* **chat** — ``#ask`` streams an answer to ``#prompt`` into ``#answer``
  token by token (an ``async def`` generator: a first yield, then ``Patch``
  appends), with ``#answer-status`` saying ``thinking``/``done``;
* **sync stream** — ``#count-btn``: a ``def`` generator counting 1..5 into
  ``#count-out``, off the event loop;
* **failing stream** — ``#fail-btn``: yields once, then raises;
* **long stream** — ``#long-btn``: yields forever (until cancelled);
* **grid** — ``#grid``, a dash-ag-grid of ``GRID_ROWS`` (10,000) rows;
  ``#read-cell`` reads one cell with ``get_prop(path=...)`` into ``#cell``,
  ``#read-all`` the whole ``rowData``, each reporting how long it took;
* **events** — ``#events-go`` sends ``EVENT_COUNT`` events ``tick`` at
  ``EVENT_RATE`` a second (``#events-rate``/``#events-count`` may override);
  the page's script draws them (assets/live_events.js);
* **slider** — ``#slider`` (``updatemode="drag"``) fires a slow callback
  (``SLOW`` s) into ``#slider-out``; ``#queue-btn`` and ``#parallel-btn``
  fire callbacks with ``on_retrigger="queue"`` and ``"parallel"``.
* ``GET /_live/stats``: counters (runs started, cancelled, finished...), the
  sizes of the ``get_props_response`` messages received, the live sessions.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dash_ag_grid as dag
from dash import Input, Output, Patch, State, ctx, dcc, html, no_update, set_props

from quartdash import Dash, broadcast

ENV = os.environ
GRID_ROWS = int(ENV.get("LIVE_GRID_ROWS", "10000"))
EVENT_RATE = int(ENV.get("LIVE_EVENT_RATE", "1000"))
EVENT_COUNT = int(ENV.get("LIVE_EVENT_COUNT", "10000"))
SLOW = float(ENV.get("LIVE_SLOW", "1.0"))
TOKEN_DELAY = float(ENV.get("LIVE_TOKEN_DELAY", "0.03"))

app = Dash(__name__, websocket_callbacks=True,
           assets_folder=str(Path(__file__).with_name("live_assets")),
           websocket_max_pending_event_bytes=int(ENV.get("LIVE_EVENT_BUDGET", 4 * 1024 * 1024)))
COUNTERS: Counter[str] = Counter()
RESPONSE_SIZES: list[int] = []

ROWS = [{"id": i, "name": f"row {i}", "price": round(i * 1.25, 2)} for i in range(GRID_ROWS)]

app.layout = html.Div([
    # chat
    dcc.Input(id="prompt", value="hello"),
    html.Button("Ask", id="ask"),
    html.Div(id="answer", children=""),
    html.Div(id="answer-status"),
    # other streams
    html.Button("Count", id="count-btn"), html.Div(id="count-out"),
    html.Button("Fail", id="fail-btn"), html.Div(id="fail-out"),
    html.Button("Long", id="long-btn"), html.Div(id="long-out"),
    # grid
    dag.AgGrid(id="grid", rowData=ROWS,
               columnDefs=[{"field": "id"}, {"field": "name"}, {"field": "price"}],
               getRowId="String(params.data.id)", style={"height": "200px"}),
    dcc.Input(id="row-index", type="number", value=GRID_ROWS // 2),
    html.Button("Read one cell", id="read-cell"), html.Div(id="cell"),
    html.Button("Read all rows", id="read-all"), html.Div(id="all"),
    # events
    html.Button("Events", id="events-go"),
    dcc.Input(id="events-rate", type="number", value=EVENT_RATE),
    dcc.Input(id="events-count", type="number", value=EVENT_COUNT),
    html.Div(id="events-sent"),
    html.Button("Burst", id="burst-btn"), html.Div(id="burst-out"),
    html.Canvas(id="events-canvas", width=400, height=100),
    # re-triggering
    dcc.Slider(id="slider", min=0, max=100, step=1, value=0, updatemode="drag"),
    html.Div(id="slider-out"),
    html.Button("Queue", id="queue-btn"), html.Div(id="queue-out"),
    html.Button("Parallel", id="parallel-btn"), html.Div(id="parallel-out"),
    # broadcast events
    html.Button("Join the feed", id="join-feed"), html.Div(id="joined"),
])

FEED = broadcast.Topic("live-feed")

TOKENS = ["The", " answer", " to", " '{prompt}'", " is", " streamed", " one", " token",
          " at", " a", " time", "."]


@app.callback(Output("answer", "children"), Output("answer-status", "children"),
              Input("ask", "n_clicks"), State("prompt", "value"), prevent_initial_call=True)
async def chat(n_clicks: int, prompt: str) -> Any:
    COUNTERS["chat_started"] += 1
    try:
        yield "", "thinking"
        for token in TOKENS:
            await asyncio.sleep(TOKEN_DELAY)
            patch = Patch()
            patch += token.format(prompt=prompt)
            yield patch, no_update
        yield no_update, "done"
    except asyncio.CancelledError:
        COUNTERS["chat_cancelled"] += 1
        raise
    COUNTERS["chat_finished"] += 1


@app.callback(Output("count-out", "children"), Input("count-btn", "n_clicks"),
              prevent_initial_call=True)
def count(n_clicks: int) -> Any:
    for i in range(1, 6):
        time.sleep(0.02)  # blocking: fine, each step runs in the thread pool
        yield i


@app.callback(Output("fail-out", "children"), Input("fail-btn", "n_clicks"),
              prevent_initial_call=True)
async def fail(n_clicks: int) -> Any:
    yield "partial"
    await asyncio.sleep(0.01)
    raise ValueError("the stream broke")


@app.callback(Output("long-out", "children"), Input("long-btn", "n_clicks"),
              prevent_initial_call=True)
async def long_stream(n_clicks: int) -> Any:
    COUNTERS["long_started"] += 1
    i = 0
    try:
        while True:
            i += 1
            yield i
            await asyncio.sleep(0.02)
    finally:
        COUNTERS["long_closed"] += 1


@app.callback(Output("cell", "children"), Input("read-cell", "n_clicks"),
              State("row-index", "value"), prevent_initial_call=True)
async def read_cell(n_clicks: int, index: int) -> str:
    started = time.perf_counter()
    price = await ctx.websocket.get_prop("grid", "rowData", path=[int(index), "price"])
    return f"{price} in {(time.perf_counter() - started) * 1000:.1f} ms"


@app.callback(Output("all", "children"), Input("read-all", "n_clicks"),
              prevent_initial_call=True)
async def read_all(n_clicks: int) -> str:
    started = time.perf_counter()
    rows = await ctx.websocket.get_prop("grid", "rowData", timeout=30)
    return f"{len(rows)} rows in {(time.perf_counter() - started) * 1000:.1f} ms"


@app.callback(Output("events-sent", "children"), Input("events-go", "n_clicks"),
              State("events-rate", "value"), State("events-count", "value"),
              prevent_initial_call=True)
async def events(n_clicks: int, rate: int, total: int) -> str:
    ws = ctx.websocket
    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = 0
    for i in range(int(total)):
        if not await ws.send_event("tick", {"i": i, "v": (i * 37) % 100}):
            refused += 1
        due = started + (i + 1) / rate
        if due > loop.time() and i % 10 == 9:
            await asyncio.sleep(due - loop.time())
    return f"sent {total} in {loop.time() - started:.2f} s, {refused} refused"


@app.callback(Output("burst-out", "children"), Input("burst-btn", "n_clicks"),
              prevent_initial_call=True)
async def burst(n_clicks: int) -> str:
    """200 events without yielding to the loop (send_event does not suspend):
    nothing is sent meanwhile, so a small event budget (LIVE_EVENT_BUDGET) overflows."""
    refused = 0
    for i in range(200):
        if not await ctx.websocket.send_event("tick", {"i": i, "v": 50}):
            refused += 1
    return f"burst of 200: {refused} refused"


@app.callback(Output("slider-out", "children"), Input("slider", "value"),
              prevent_initial_call=True)
async def slow_slider(value: int) -> str:
    COUNTERS["slider_started"] += 1
    try:
        await asyncio.sleep(SLOW)
    except asyncio.CancelledError:
        COUNTERS["slider_cancelled"] += 1
        raise
    COUNTERS["slider_finished"] += 1
    return f"value {value}"


RUNNING: Counter[str] = Counter()


async def _one_at_a_time(kind: str, n_clicks: int) -> str:
    RUNNING[kind] += 1
    COUNTERS[f"{kind}_max"] = max(COUNTERS[f"{kind}_max"], RUNNING[kind])
    try:
        await asyncio.sleep(0.2)
    finally:
        RUNNING[kind] -= 1
    COUNTERS[f"{kind}_finished"] += 1
    set_props(f"{kind}-btn", {"title": f"run {n_clicks} done"})
    return f"{kind} {n_clicks}"


@app.callback(Output("queue-out", "children"), Input("queue-btn", "n_clicks"),
              prevent_initial_call=True, on_retrigger="queue")
async def queued(n_clicks: int) -> str:
    return await _one_at_a_time("queue", n_clicks)


@app.callback(Output("parallel-out", "children"), Input("parallel-btn", "n_clicks"),
              prevent_initial_call=True, on_retrigger="parallel")
async def parallel(n_clicks: int) -> str:
    return await _one_at_a_time("parallel", n_clicks)


@app.callback(Output("joined", "children"), Input("join-feed", "n_clicks"),
              prevent_initial_call=True)
async def join_feed(n_clicks: int) -> str:
    await FEED.join()
    return "joined"


def record_answers(ws: Any, message: dict[str, Any]) -> None:
    """Measure what a get_prop answer costs on the wire (re-encoded: about its size)."""
    if message.get("type") == "get_props_response":
        RESPONSE_SIZES.append(len(json.dumps(message.get("payload"))))


app.live.own_message_hooks.append(record_answers)
asgi = app.asgi


@asgi.post("/_live/feed/<name>")
async def feed(name: str) -> dict[str, Any]:
    """An event to every tab of the topic, or (``name == "all"``) of the app."""
    if name == "all":
        await broadcast.send_event("notice", {"to": "every tab"}, app=app)
    else:
        await FEED.send_event(name, {"to": "the feed"})
    return {"sent": name}


@asgi.get("/_live/stats")
async def stats() -> dict[str, Any]:
    return {
        "counters": dict(COUNTERS),
        "response_sizes": RESPONSE_SIZES[-20:],
        "sessions": len(app.live.sessions),
    }
