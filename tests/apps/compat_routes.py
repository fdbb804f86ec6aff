"""Dash's own route hooks on the front doors that build the app before its server.

``Dash.add_startup_route`` routes (every Dash app made after the call serves
them at ``<prefix>_dash_startup_route/<name>``) on a ``DashBlueprint`` at
``/app/`` and on a drop-in ``Dash`` mounted on this Quart app at ``/dash/``.
Served by hypercorn in tests/test_dash_compat_browser.py.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, html
from quart import Quart, request

from quartdash import Dash, DashBlueprint


def whoami() -> dict[str, Any]:
    return {"app": dash.get_app().title}


async def echo() -> dict[str, Any]:
    return {"app": dash.get_app().title, "echo": await request.get_json()}


dash.Dash.add_startup_route("compat-whoami", whoami, ["GET"])
dash.Dash.add_startup_route("compat-echo", echo, ["POST"])

asgi = Quart(__name__)


def layout() -> html.Div:
    return html.Div([html.Button("Go", id="go"), html.Div("ready", id="out")])


blue = DashBlueprint("blue", __name__, url_prefix="/app", title="blueprint app")
blue.layout = layout()


@blue.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
def blue_clicked(n_clicks: int) -> str:
    return f"blue {n_clicks}"


asgi.register_blueprint(blue)

mounted = Dash(__name__, server=asgi, url_base_pathname="/dash/", title="mounted app")
mounted.layout = layout()


@mounted.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True)
def mounted_clicked(n_clicks: int) -> str:
    return f"mounted {n_clicks}"
