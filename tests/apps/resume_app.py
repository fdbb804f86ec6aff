"""The app the resume tests drop and bring back (tests/test_resume*.py).

* a persistent callback appends 1, 2, 3... to ``#ticks`` with ``Patch``
  every ``RESUME_TICK`` seconds (0.05);
* ``#count-btn`` starts an event-triggered callback that appends 1..N to
  ``#counts`` the same way (N = ``RESUME_COUNT``, 400: 20 s) and returns;
* ``#ask-btn`` reads ``#q.value`` with ``get_prop`` and answers;
  ``#ask-later-btn`` does the same a second later;
* ``#who-btn`` answers the pid of the worker holding the session;
* ``GET /_resume/stats``: how often each callback started, returned or was
  cancelled, the live sessions and their states, this worker's pid and its
  relay counters (resumes served for other workers, and relayed to them).

Environment: ``RESUME_TIMEOUT`` (websocket_resume_timeout, 30),
``RESUME_PENDING_BYTES`` (websocket_max_pending_bytes), ``RESUME_TICK``,
``RESUME_COUNT``, ``RESUME_HEARTBEAT_MS`` (the worker's heartbeat, for the
browser tests), and ``QUARTDASH_BROADCAST_URL`` (redis:// to resume across
workers).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from dash import Input, Output, Patch, ctx, dcc, html, set_props

from quartdash import Dash, signals
from tests.apps._workers import allow_hold

ENV = os.environ
TICK = float(ENV.get("RESUME_TICK", "0.05"))
COUNT = int(ENV.get("RESUME_COUNT", "400"))

options: dict[str, Any] = {
    "websocket_callbacks": True,
    "websocket_resume_timeout": float(ENV.get("RESUME_TIMEOUT", "30")),
    "websocket_heartbeat_interval": int(ENV.get("RESUME_HEARTBEAT_MS", "30000")),
}
if "RESUME_PENDING_BYTES" in ENV:
    options["websocket_max_pending_bytes"] = int(ENV["RESUME_PENDING_BYTES"])
app = Dash(__name__, **options)

COUNTERS: Counter[str] = Counter()

app.layout = html.Div([
    html.Div(id="ticks", children=[]),
    html.Button("count", id="count-btn"),
    html.Div(id="counts", children=[]),
    html.Div(id="count-done"),
    dcc.Input(id="q", value="initial"),
    html.Button("ask", id="ask-btn"),
    html.Div(id="answer"),
    html.Button("ask later", id="ask-later-btn"),
    html.Div(id="later-answer"),
    html.Button("who holds this session", id="who-btn"),
    html.Div(id="holder"),
    dcc.Store(id="_quartdash_continuity"),
    html.Div(id="continuity"),
])


def append(component: str, value: int) -> None:
    """Append ``"<value> "``: the page's text reads "1 2 3 ..."."""
    patch = Patch()
    patch.append(f"{value} ")
    set_props(component, {"children": patch})


@app.callback(persistent=True)
async def ticker() -> None:
    ws = ctx.websocket
    COUNTERS["ticker_started"] += 1
    n = 0
    try:
        while not ws.is_shutdown:
            n += 1
            append("ticks", n)
            await asyncio.sleep(TICK)
    finally:
        COUNTERS["ticker_ended"] += 1


@app.callback(Output("count-done", "children"), Input("count-btn", "n_clicks"),
              prevent_initial_call=True)
async def count(n_clicks: int) -> str:
    COUNTERS["count_started"] += 1
    try:
        for i in range(1, COUNT + 1):
            append("counts", i)
            await asyncio.sleep(TICK)
    except asyncio.CancelledError:
        COUNTERS["count_cancelled"] += 1
        raise
    COUNTERS["count_returned"] += 1
    return f"counted {COUNT}"


@app.callback(Output("answer", "children"), Input("ask-btn", "n_clicks"),
              prevent_initial_call=True)
async def ask(n_clicks: int) -> str:
    COUNTERS["ask_started"] += 1
    value = await ctx.websocket.get_prop("q", "value", timeout=20)
    COUNTERS["ask_returned"] += 1
    return f"got {value}"


@app.callback(Output("later-answer", "children"), Input("ask-later-btn", "n_clicks"),
              prevent_initial_call=True)
async def ask_later(n_clicks: int) -> str:
    """Asks a second after it starts: while the tests' connection is down."""
    await asyncio.sleep(1.0)
    value = await ctx.websocket.get_prop("q", "value", timeout=20)
    return f"got {value} later"


@app.callback(Output("holder", "children"), Input("who-btn", "n_clicks"),
              prevent_initial_call=True)
async def who(n_clicks: int) -> str:
    """The worker process whose event loop runs this session's callbacks."""
    return str(os.getpid())


app.clientside_callback(
    "function(data) { return data ? 'lost: ' + data.reason : 'continuous'; }",
    Output("continuity", "children"), Input("_quartdash_continuity", "data"))

asgi = app.asgi
allow_hold(asgi, "/_resume/stats")


def _resumed(sender: Any, **_: Any) -> None:
    COUNTERS["resumed"] += 1  # here, where the session lives (relayed or not)


signals.session_resumed.connect(_resumed, sender=app.live, weak=False)


@asgi.get("/_resume/stats")
async def stats() -> dict[str, Any]:
    from quartdash.broadcast.relay import relay_stats

    return {
        "counters": dict(COUNTERS),
        "sessions": sorted(s.state.value for s in app.live.sessions),
        "pid": os.getpid(),
        "tasks": len(asyncio.all_tasks()),
        "relay": relay_stats(),
    }
