"""Two DashBlueprints at /a/ and /b/ beside a plain Quart route: no cross-talk."""

from __future__ import annotations

import asyncio
import time

from dash import (
    ALL,
    MATCH,
    Input,
    Output,
    Patch,
    State,
    ctx,
    dcc,
    html,
    no_update,
    set_props,
)
from dash.exceptions import PreventUpdate
from quart import Quart

from quartdash import DashBlueprint

asgi = Quart(__name__)


@asgi.route("/plain")
async def plain() -> str:
    return "plain quart route"


# --- app A: every HTTP callback feature a Dash user relies on -------------------

a = DashBlueprint("a", __name__, url_prefix="/a", title="App A")
a.layout = html.Div([
    html.H1("App A", id="title-a"),
    html.Button("Click", id="btn"),
    html.Div("not clicked", id="out"),
    dcc.Input(id="name", value="world"),
    html.Div(id="multi-1"), html.Div(id="multi-2"),
    html.Div(id="side"),
    html.Button("Add item", id="add"),
    html.Div(id="items", children=[]),
    dcc.Store(id="store", data={"count": 0}),
    html.Div(id="store-view"),
    html.Button("slow", id="slow-btn"), html.Div(id="slow-out"),
    html.Button("async", id="async-btn"), html.Div(id="async-out"),
    html.Button("boom", id="boom-btn"), html.Div(id="boom-out"),
    html.Div(id="client-out"),
])


@a.callback(Output("out", "children"), Input("btn", "n_clicks"), State("name", "value"),
            prevent_initial_call=True)
def on_click(n: int, name: str) -> str:
    set_props("side", {"children": f"side effect {n}"})  # set_props from an HTTP callback
    return f"clicked {n} times, hello {name} (trigger: {ctx.triggered_id})"


@a.callback(Output("multi-1", "children"), Output("multi-2", "children"),
            Input("btn", "n_clicks"), prevent_initial_call=True)
async def multi(n: int) -> tuple[str, object]:
    if n and n % 2 == 0:
        return f"even {n}", no_update
    return f"odd {n}", f"second output {n}"


@a.callback(Output("items", "children"), Input("add", "n_clicks"), prevent_initial_call=True)
def add_item(n: int) -> Patch:
    patch = Patch()
    patch.append(html.Div([
        dcc.Input(id={"type": "item-in", "index": n}, value=f"item {n}"),
        html.Div(id={"type": "item-out", "index": n}),
    ]))
    return patch


@a.callback(Output({"type": "item-out", "index": MATCH}, "children"),
            Input({"type": "item-in", "index": MATCH}, "value"))
def echo_item(value: str) -> str:
    return f"echo: {value}"


@a.callback(Output("store", "data"), Input({"type": "item-in", "index": ALL}, "value"),
            prevent_initial_call=True)
def count_items(values: list[str]) -> Patch:
    patch = Patch()
    patch["count"] = len(values)
    return patch


@a.callback(Output("store-view", "children"), Input("store", "data"))
def show_store(data: dict) -> str:
    if not data:
        raise PreventUpdate
    return f"items: {data['count']}"


@a.callback(Output("slow-out", "children"), Input("slow-btn", "n_clicks"),
            prevent_initial_call=True)
def slow(n: int) -> str:
    time.sleep(1.0)  # blocking: must run off the event loop
    return "slow done"


@a.callback(Output("async-out", "children"), Input("async-btn", "n_clicks"),
            prevent_initial_call=True)
async def fast_async(n: int) -> str:
    await asyncio.sleep(0)
    return f"async {n}"


@a.callback(Output("boom-out", "children"), Input("boom-btn", "n_clicks"),
            prevent_initial_call=True)
def boom(n: int) -> str:
    raise ValueError("SECRET-detail /etc/passwd")


a.clientside_callback(
    "function(v) { return 'client: ' + v; }",
    Output("client-out", "children"), Input("name", "value"),
)

# --- app B: same component ids, its own callbacks --------------------------------

b = DashBlueprint("b", __name__, url_prefix="/b", title="App B")
b.layout = html.Div([
    html.H1("App B", id="title-b"),
    html.Button("Click", id="btn"),
    html.Div("b untouched", id="out"),
])


@b.callback(Output("out", "children"), Input("btn", "n_clicks"), prevent_initial_call=True)
async def on_click_b(n: int) -> str:
    return f"b clicked {n}"


asgi.register_blueprint(a)
asgi.register_blueprint(b)
