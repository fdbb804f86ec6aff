"""Callback API routes (``api_endpoint=``, served once ``setup_apis()`` runs).

A ``DashBlueprint`` serves them under its ``url_prefix``, guarded by its own
hooks; a drop-in ``quartdash.Dash`` at the server root, as Dash does (even
with a ``url_base_pathname``). ``setup_apis()`` works before and after
``register_blueprint``. Served by hypercorn in tests/test_dash_compat_browser.py.
"""

from __future__ import annotations

from dash import Input, Output, html
from quart import Quart, abort, request

from quartdash import Dash, DashBlueprint

asgi = Quart(__name__)


def layout() -> html.Div:
    return html.Div([html.Button("Go", id="go"), html.Div("ready", id="out")])


# setup_apis() before registering; the blueprint's hook guards its API route.
early = DashBlueprint("early", __name__, url_prefix="/early")
early.layout = layout()


@early.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True,
                api_endpoint="/api/double")
def double(n_clicks: int = 0) -> int:
    return 2 * n_clicks


early.setup_apis()


@early.before_request
async def require_api_key() -> None:
    if request.path.startswith("/early/api/") and request.headers.get("X-Api-Key") != "k1":
        abort(401)


asgi.register_blueprint(early)

# setup_apis() after registering, where Dash's docs put it: just before serving.
late = DashBlueprint("late", __name__, url_prefix="/late")
late.layout = layout()


@late.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True,
               api_endpoint="/api/half")
async def half(n_clicks: int = 0) -> float:
    return n_clicks / 2


asgi.register_blueprint(late)
late.setup_apis()

# A drop-in Dash mounted at /dash/: its API route at the root, as with Dash.
mounted = Dash(__name__, server=asgi, url_base_pathname="/dash/")
mounted.layout = layout()


@mounted.callback(Output("out", "children"), Input("go", "n_clicks"), prevent_initial_call=True,
                  api_endpoint="/api/triple")
def triple(n_clicks: int = 0) -> int:
    return 3 * n_clicks


mounted.setup_apis()
