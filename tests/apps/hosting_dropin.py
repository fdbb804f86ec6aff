"""The drop-in quartdash.Dash with a persistent callback per tab and a status route."""

from __future__ import annotations

import asyncio

from dash import callback, ctx, html, set_props
from quart import jsonify

from quartdash import Dash

app = Dash(__name__, websocket_callbacks=True, title="drop-in")
app.layout = html.Div([html.H1("Live"), html.Div("waiting", id="tick"), html.Div(id="me")])

# Loops running now, and cleanups done, keyed by renderer id.
running: set[str] = set()
cleaned: list[str] = []


@callback(persistent=True)
async def ticker() -> None:
    ws = ctx.websocket
    me = ws.renderer_id
    running.add(me)
    set_props("me", {"children": me})
    n = 0
    try:
        while not ws.is_shutdown:
            n += 1
            set_props("tick", {"children": f"tick {n}"})
            await asyncio.sleep(0.1)
    finally:
        running.discard(me)
        cleaned.append(me)


@app.server.route("/status")
async def status():
    return jsonify(running=sorted(running), cleaned=cleaned,
                   sessions=len(app.live.sessions))


asgi = app.asgi
