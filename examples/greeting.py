"""2. Reading props with ``get_prop``: a greeting.

What to look at: type a name, then click "Start Greeting". The callback does
not declare the input as ``State``: it asks the browser for the input's
*current* value with ``await ctx.websocket.get_prop(...)`` while it runs,
shows "Processing for <name>..." at once, and returns "Hello, <name>!".

Run alone: ``hypercorn examples.greeting:asgi`` or ``python -m examples.greeting``.
"""

from __future__ import annotations

import asyncio

from dash import Input, Output, ctx, dcc, html, set_props
from quart import Quart

from quartdash import DashBlueprint


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("greeting", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Greeting"

    app.layout = html.Div([
        dcc.Input(id="name-input", placeholder="Type your name..."),
        html.Button("Start Greeting", id="greet-btn"),
        html.Div(id="greeting-output"),
    ])

    @app.callback(
        Output("greeting-output", "children"),
        Input("greet-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def greet(n_clicks):
        ws = ctx.websocket
        # Read the current value of the input at the moment the user clicks
        name = await ws.get_prop("name-input", "value")
        set_props("greeting-output", {"children": f"Processing for {name}..."})
        await asyncio.sleep(2)
        return f"Hello, {name}!"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
