"""3. Per-callback WebSocket: one streaming callback beside an ordinary HTTP one.

What to look at: the app does *not* set ``websocket_callbacks=True``. Only
``stream_updates`` has ``websocket=True``: click "Stream Updates" and it
pushes "Update 1 of 5..." ... over the WebSocket. The dropdown's callback
has no flag and still runs over HTTP (watch the POSTs to
``_dash-update-component`` in the browser's network tab when you change it).

Run alone: ``hypercorn examples.per_callback:asgi`` or ``python -m examples.per_callback``.
"""

from __future__ import annotations

import asyncio

from dash import Input, Output, dcc, html, set_props
from quart import Quart

from quartdash import DashBlueprint


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("per_callback", __name__, url_prefix=prefix)
    app.title = "Per-callback WebSocket"

    app.layout = html.Div([
        html.Button("Stream Updates", id="stream-btn"),
        html.Div(id="stream-output", children="Waiting..."),
        dcc.Dropdown(
            id="my-dropdown",
            options=["Option A", "Option B", "Option C"],
            value="Option A",
        ),
        html.Div(id="dropdown-output"),
    ])

    # This callback uses WebSocket for streaming updates
    @app.callback(
        Output("stream-output", "children"),
        Input("stream-btn", "n_clicks"),
        prevent_initial_call=True,
        websocket=True,
    )
    async def stream_updates(n_clicks):
        for i in range(1, 6):
            set_props("stream-output", {"children": f"Update {i} of 5..."})
            await asyncio.sleep(1)
        return "All updates complete!"

    # This callback uses the standard HTTP request/response
    @app.callback(
        Output("dropdown-output", "children"),
        Input("my-dropdown", "value"),
    )
    def update_dropdown(value):
        return f"Selected: {value}"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
