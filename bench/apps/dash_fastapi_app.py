"""Contender: Dash 4.4.1's FastAPI backend, served by uvicorn[standard].

uvicorn dash_fastapi_app:asgi
"""

from __future__ import annotations

import time

import _common as common
from dash import Dash, Input, Output, callback, ctx, set_props

app = Dash(__name__, backend="fastapi", websocket_callbacks=True)
app.layout = common.dash_layout()


@callback(persistent=True)
async def live():
    ws = ctx.websocket
    who = common.renderer_of(ws)
    async for value in common.values(lambda: ws.is_shutdown, common.dash_append, who):
        set_props(common.LIVE_ID, {"children": value})


@callback(Output("echo-out", "children"), Input("btn", "n_clicks"), prevent_initial_call=True)
async def echo(n_clicks):
    ws = ctx.websocket
    value = None
    for _ in range(common.getprop_count(n_clicks)):
        value = await ws.get_prop("inp", "value")
        common.STATS["getprops"] += 1
    return value


@callback(Output("http-out", "children"), Input("http-btn", "n_clicks"))
def http_cb(n_clicks):
    common.STATS["http"] += 1
    return f"clicked {n_clicks}"


common.add_figure_callback()


asgi = app.server


async def bench_stats():
    return {**common.stats(), "time": time.time()}


asgi.add_api_route("/_bench/stats", bench_stats, methods=["GET"])
# Dash registers a catch-all route; make ours match first.
asgi.router.routes.insert(0, asgi.router.routes.pop())
