"""7. Migrating from ``dcc.Interval``: the before and after apps side by side.

What to look at: the page shows two Dash apps next to each other, each a
``DashBlueprint`` of its own (``before/`` and ``after/``), framed by a plain
Quart page. Both show a live AAPL price once a second:

* **before** polls: a ``dcc.Interval`` makes the browser POST to
  ``_dash-update-component`` every second, data or not;
* **after** is pushed: a persistent WebSocket callback calls ``set_props``
  when a price is ready. No Interval, no Output, no polling requests.

Open the browser's network tab to see the difference.

Run alone: ``hypercorn examples.interval_migration:asgi`` or
``python -m examples.interval_migration``.
"""

from __future__ import annotations

import asyncio
import random

from dash import Input, Output, ctx, dcc, html, set_props
from quart import Blueprint, Quart

from quartdash import DashBlueprint

_price = 190.0


def get_latest_price(symbol: str) -> float:
    """A stand-in for a market data source: a random walk."""
    global _price
    _price = round(_price * (1 + random.gauss(0, 0.002)), 2)
    return _price


def build_before(prefix: str = "/") -> DashBlueprint:
    """Before: polling with ``dcc.Interval`` (plain HTTP callbacks)."""
    app = DashBlueprint("interval_before", __name__, url_prefix=prefix)
    app.title = "Before: dcc.Interval"

    app.layout = html.Div([
        html.H4("Live Price"),
        html.Div(id="price-display"),
        dcc.Interval(id="poll", interval=1000, n_intervals=0),
    ])

    @app.callback(Output("price-display", "children"), Input("poll", "n_intervals"))
    def update_price(n):
        price = get_latest_price("AAPL")
        return f"AAPL: ${price}"

    return app


def build_after(prefix: str = "/") -> DashBlueprint:
    """After: server push with a persistent callback."""
    app = DashBlueprint("interval_after", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "After: persistent callback"

    app.layout = html.Div([
        html.H4("Live Price"),
        html.Div(id="price-display"),
    ])

    @app.callback(persistent=True)
    async def stream_price():
        ws = ctx.websocket
        while not ws.is_shutdown:
            price = get_latest_price("AAPL")
            set_props("price-display", {"children": f"AAPL: ${price}"})
            await asyncio.sleep(1)

    return app


PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Migrating from dcc.Interval</title>
  <link rel="icon" href="data:,">
  <style>
    body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
    .pair {{ display: flex; gap: 1rem; }}
    figure {{ flex: 1; margin: 0; }}
    iframe {{ width: 100%; height: 180px; border: 1px solid #ccc; border-radius: 6px; }}
  </style>
</head>
<body>
  <h2>Migrating from dcc.Interval</h2>
  <div class="pair">
    <figure>
      <figcaption><b>Before</b>: <code>dcc.Interval</code>, the browser polls over HTTP</figcaption>
      <iframe id="before" title="before" src="{before}"></iframe>
    </figure>
    <figure>
      <figcaption><b>After</b>: a persistent callback, the server pushes</figcaption>
      <iframe id="after" title="after" src="{after}"></iframe>
    </figure>
  </div>
</body>
</html>
"""


def mount(server: Quart, prefix: str = "/") -> list[DashBlueprint]:
    """Register both apps under ``prefix`` and the side-by-side page at ``prefix``;
    return the two apps."""
    base = "/" + prefix.strip("/")
    base = "" if base == "/" else base
    apps = [build_before(f"{base}/before"), build_after(f"{base}/after")]
    for app in apps:
        server.register_blueprint(app)

    page = Blueprint("interval_migration", __name__, url_prefix=base or None)

    @page.get("/")
    async def side_by_side() -> tuple[str, int, dict[str, str]]:
        html_page = PAGE.format(before=f"{base}/before/", after=f"{base}/after/")
        return html_page, 200, {"Content-Type": "text/html; charset=utf-8"}

    server.register_blueprint(page)
    return apps


asgi = Quart(__name__)
mount(asgi)

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
