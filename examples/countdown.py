"""1. Streaming updates with ``set_props``: a countdown.

What to look at: click "Start Countdown". The callback pushes
"Countdown: 10" ... "Countdown: 1" with ``set_props`` while it is still
running (one push a second, sent at once over the WebSocket), and its return
value, "Done!", is the final state.

Run alone: ``hypercorn examples.countdown:asgi`` or ``python -m examples.countdown``.
"""

from __future__ import annotations

import asyncio

from dash import Input, Output, html, set_props
from quart import Quart

from quartdash import DashBlueprint


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("countdown", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Countdown"

    app.layout = html.Div([
        html.Button("Start Countdown", id="start-btn"),
        html.Div(id="countdown-display", children="Ready"),
    ])

    @app.callback(
        Output("countdown-display", "children"),
        Input("start-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def countdown(n_clicks):
        for i in range(10, 0, -1):
            set_props("countdown-display", {"children": f"Countdown: {i}"})
            await asyncio.sleep(1)
        return "Done!"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
