"""6. External WebSocket integration: forward an upstream feed to the page.

What to look at: click "Connect". The callback opens its *own* WebSocket
client connection (the ``websockets`` library) to an upstream price feed,
and once a second it reads the selected symbol with ``get_prop``, sends it
upstream as its request, receives the feed's answer and forwards it to the
page with ``set_props``. Switch the symbol while it runs: the next request
asks for the new one. Close the tab and the callback is cancelled, which
closes the upstream connection (``async with``).

The upstream service is simulated: a small ``websockets.serve`` feed server
on 127.0.0.1 (a free port) that this example starts when the app starts
serving and stops at shutdown (``before_app_serving`` / ``after_app_serving``
on the blueprint, so it also runs inside the gallery).

Run alone: ``hypercorn examples.external_feed:asgi`` or ``python -m examples.external_feed``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

from dash import Input, Output, ctx, dcc, html, set_props
from quart import Quart

from examples import require
from quartdash import DashBlueprint

websockets = require("websockets")

log = logging.getLogger(__name__)


class FeedServer:
    """A stand-in for an external quote service: for every symbol a client
    sends, it answers with one quote line."""

    def __init__(self) -> None:
        self._server: websockets.Server | None = None
        self._prices = {"AAPL": 190.0, "GOOGL": 140.0, "MSFT": 410.0}
        self._ticks = itertools.count(1)
        self.url: str | None = None

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await websockets.serve(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/feed"
        log.info("upstream feed listening on %s", self.url)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        self.url = None

    async def _serve(self, connection: websockets.ServerConnection) -> None:
        async for request in connection:
            symbol = str(request)
            price = self._prices.get(symbol)
            if price is None:
                await connection.send(f"upstream: unknown symbol {symbol!r}")
                continue
            price = self._prices[symbol] = round(price * (1 + random.gauss(0, 0.004)), 2)
            await connection.send(f"upstream quote #{next(self._ticks)}: {symbol} ${price:.2f}")


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("external_feed", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "External WebSocket feed"
    feed = FeedServer()

    @app.before_app_serving
    async def start_feed() -> None:
        await feed.start()

    @app.after_app_serving
    async def stop_feed() -> None:
        await feed.stop()

    app.layout = html.Div([
        dcc.Dropdown(id="symbol-select", options=["AAPL", "GOOGL", "MSFT"], value="AAPL"),
        html.Button("Connect", id="connect-btn"),
        html.Div(id="status", children="Not connected"),
        html.Div(id="live-output"),
    ])

    @app.callback(
        Output("status", "children"),
        Input("connect-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def stream_from_service(n):
        ws = ctx.websocket
        if ws is None:
            return "WebSocket not available"

        set_props("status", {"children": "Connecting..."})

        try:
            async with websockets.connect(feed.url) as upstream:
                set_props("status", {"children": "Connected"})

                while True:
                    symbol = await ws.get_prop("symbol-select", "value")
                    await upstream.send(symbol)

                    message = await upstream.recv()
                    set_props("live-output", {"children": message})

                    await asyncio.sleep(1)

        except asyncio.CancelledError:
            pass
        except websockets.ConnectionClosed:
            return "Upstream feed closed"

        return "Disconnected"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
