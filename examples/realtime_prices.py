"""5. Real-time data streaming: prices patched into a ``dcc.Store``.

What to look at: click "Connect". Once a second the loop patches a new price
for every symbol into the ``prices-store`` (``Patch``: only the changed keys
travel), then asks the browser which symbol is selected *right now* and what
the store holds (two ``get_prop`` reads), and shows that price. Change the
dropdown while it runs: the next tick follows it. Close the tab and the
callback gets ``CancelledError`` and stops cleanly (logged on the server).

Run alone: ``hypercorn examples.realtime_prices:asgi`` or ``python -m examples.realtime_prices``.
"""

from __future__ import annotations

import asyncio
import logging
import random

from dash import Input, Output, Patch, ctx, dcc, html, set_props
from quart import Quart

from quartdash import DashBlueprint

log = logging.getLogger(__name__)


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("realtime_prices", __name__, url_prefix=prefix,
                        websocket_callbacks=True)
    app.title = "Real-time prices"

    app.layout = html.Div([
        dcc.Store(id="prices-store", data={}),
        dcc.Dropdown(
            id="symbol-select",
            options=["AAPL", "GOOGL", "MSFT"],
            value="AAPL",
        ),
        html.Div(id="live-price"),
        html.Div(id="status", children="Disconnected"),
        html.Button("Connect", id="connect-btn"),
    ])

    @app.callback(
        Output("status", "children"),
        Input("connect-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def stream_prices(n_clicks):
        ws = ctx.websocket
        if ws is None:
            return "No WebSocket"

        set_props("status", {"children": "Connected"})

        try:
            while True:
                # Simulate incoming price data
                for symbol in ["AAPL", "GOOGL", "MSFT"]:
                    price = round(100 + random.random() * 50, 2)
                    patched = Patch()
                    patched[symbol] = price
                    set_props("prices-store", {"data": patched})

                # Read which symbol the user has selected right now
                selected = await ws.get_prop("symbol-select", "value")
                if selected:
                    prices = await ws.get_prop("prices-store", "data")
                    if prices and selected in prices:
                        set_props("live-price", {
                            "children": f"{selected}: ${prices[selected]}"
                        })

                await asyncio.sleep(1)
        except asyncio.CancelledError:
            # Cancelled on disconnect. Catching the exception is optional
            # but lets you run cleanup logic.
            log.info("price stream stopped: the client disconnected")

        return "Disconnected"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
