"""9. Streaming into AG Grid: live prices updated in place.

What to look at: click "Start Streaming" (click again to pause). A persistent
callback reads the ``streaming`` store with ``get_prop``; while it is true it
pushes a fresh ``rowData`` to the ``dash-ag-grid`` grid every half second.
The grid keeps its rows and changes only the cells (green/red change column).

Run alone: ``hypercorn examples.ag_grid_stream:asgi`` or ``python -m examples.ag_grid_stream``.
"""

from __future__ import annotations

import asyncio
import random

from dash import Input, Output, ctx, dcc, html, set_props
from quart import Quart

from examples import require
from quartdash import DashBlueprint

dag = require("dash_ag_grid", package="dash-ag-grid")

columns = [
    {"field": "symbol", "headerName": "Symbol", "flex": 1},
    {"field": "price", "headerName": "Price", "flex": 1,
     "valueFormatter": {"function": "d3.format('$.2f')(params.value)"}},
    {"field": "change", "headerName": "Change %", "flex": 1,
     "valueFormatter": {"function": "d3.format('+.2f')(params.value) + '%'"},
     "cellStyle": {"function":
                   "params.value >= 0 ? {'color': '#4CAF50'} : {'color': '#f44336'}"}},
]

SYMBOLS = ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA"]
initial_prices = {s: round(random.uniform(100, 500), 2) for s in SYMBOLS}
initial_rows = [
    {"symbol": s, "price": initial_prices[s], "change": 0.0}
    for s in SYMBOLS
]


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("ag_grid_stream", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "AG Grid streaming"

    app.layout = html.Div([
        html.Button("Start Streaming", id="start"),
        dcc.Store(id="streaming", data=False),
        dag.AgGrid(id="grid", columnDefs=columns, rowData=initial_rows,
                   # Rows keep their identity across updates, so the grid
                   # changes cells in place instead of rebuilding its rows.
                   getRowId="params.data.symbol",
                   style={"height": "250px"},
                   dashGridOptions={"animateRows": True}),
    ])

    @app.callback(Output("streaming", "data"), Input("start", "n_clicks"),
                  prevent_initial_call=True)
    def toggle(n):
        return n % 2 == 1

    @app.callback(persistent=True)
    async def stream_prices():
        ws = ctx.websocket
        prices = {row["symbol"]: row["price"] for row in initial_rows}
        while not ws.is_shutdown:
            streaming = await ws.get_prop("streaming", "data")
            if streaming:
                rows = []
                for sym in SYMBOLS:
                    change = round(random.gauss(0, 1.5), 2)
                    prices[sym] = round(prices[sym] * (1 + change / 100), 2)
                    rows.append({
                        "symbol": sym,
                        "price": prices[sym],
                        "change": change,
                    })
                set_props("grid", {"rowData": rows})
                await asyncio.sleep(0.5)
            else:
                await asyncio.sleep(0.2)

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
