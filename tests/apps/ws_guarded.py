"""A DashBlueprint with allowed origins and every kind of WebSocket hook.

Serve only in its own process (``hypercorn tests.apps.ws_guarded:asgi``):
``dash.hooks`` are process-wide, so importing this module into the test
process would put its hooks on every other app there.

* ``/guarded/``: ``websocket_allowed_origins`` = an exact origin and a
  ``*`` pattern (see ALLOWED_ORIGINS).
* ``dash.hooks.websocket_connect``: rejects with (4403, ...) when the
  handshake carries ``X-Reject: dash-hook``.
* ``DashBlueprint.websocket_connect``: rejects with (4404, ...) on
  ``X-Reject: blueprint``; returns False (plain 4001) on ``X-Reject: false``.
* ``dash.hooks.websocket_message``: closes with (4402, ...) on a
  ``callback_request`` triggered by ``forbidden-btn``.
* ``DashBlueprint.websocket_message``: refuses one message without closing
  (code 0 -> an ``error`` message, code ``rejected``) when triggered by
  ``refused-btn``.
"""

from __future__ import annotations

from typing import Any

from dash import Input, Output, hooks, html
from quart import Quart

from quartdash import DashBlueprint

ALLOWED_ORIGINS = ["http://allowed.example", "https://*.trusted.example"]

asgi = Quart(__name__)

guarded = DashBlueprint("guarded", __name__, url_prefix="/guarded", websocket_callbacks=True,
                        websocket_allowed_origins=ALLOWED_ORIGINS)
guarded.layout = html.Div([
    html.Button(id="echo-btn"), html.Div(id="echo-out"),
    html.Button(id="forbidden-btn"), html.Div(id="forbidden-out"),
    html.Button(id="refused-btn"), html.Div(id="refused-out"),
])


def _triggered_by(message: dict[str, Any], component: str) -> bool:
    if message.get("type") != "callback_request":
        return False
    changed = (message.get("payload") or {}).get("changedPropIds") or []
    return any(prop_id.split(".")[0] == component for prop_id in changed)


@hooks.websocket_connect()
def dash_connect_hook(ws: Any) -> Any:
    if ws.headers.get("x-reject") == "dash-hook":
        return (4403, "dash hook says no")
    return True


@hooks.websocket_message()
def dash_message_hook(ws: Any, message: dict[str, Any]) -> Any:
    if _triggered_by(message, "forbidden-btn"):
        return (4402, "forbidden message")
    return True


@guarded.websocket_connect
async def blueprint_connect_hook(ws: Any) -> Any:
    verdict = ws.headers.get("x-reject")
    if verdict == "blueprint":
        return (4404, "blueprint hook says no")
    if verdict == "false":
        return False
    return True


@guarded.websocket_message
def blueprint_message_hook(ws: Any, message: dict[str, Any]) -> Any:
    if _triggered_by(message, "refused-btn"):
        return (0, "refused by the blueprint's message hook")
    return True


@guarded.callback(Output("echo-out", "children"), Input("echo-btn", "n_clicks"),
                  prevent_initial_call=True)
async def echo(n_clicks: int) -> str:
    return f"echo {n_clicks}"


@guarded.callback(Output("forbidden-out", "children"), Input("forbidden-btn", "n_clicks"),
                  prevent_initial_call=True)
async def forbidden(n_clicks: int) -> str:
    return "should never run"


@guarded.callback(Output("refused-out", "children"), Input("refused-btn", "n_clicks"),
                  prevent_initial_call=True)
async def refused(n_clicks: int) -> str:
    return "should never run"


asgi.register_blueprint(guarded)
