"""Broadcast: one producer feeds a live chart to every viewer, in every worker.

What to look at: open the page in several tabs and browsers. Every chart
shows the same points at the same moment, whichever worker process serves
the tab (each tab says which one does, and which worker produced the point).
POST a line of text to ``/announce`` and it shows on every open tab at once
(and on tabs opened later)::

    curl -X POST --data 'maintenance at 5pm' http://127.0.0.1:8050/announce

How: one producer task publishes a point on the ``broadcast-chart`` topic
every ``BROADCAST_CHART_PERIOD`` seconds (default 0.25). Each tab's
persistent callback iterates ``ticks.subscribe()`` and appends the point to
its chart with a ``Patch``. ``run_exclusive`` makes sure exactly one worker
runs the producer; the announcement is one ``broadcast.set_props`` for the
whole app, encoded once.

One worker, nothing to set up::

    hypercorn examples.broadcast_chart:asgi

Many workers share the stream through Redis (docs/scaling.md)::

    QUARTDASH_BROADCAST_URL=redis://127.0.0.1:6379/0 hypercorn -w 4 examples.broadcast_chart:asgi

Without Redis, ``-w 4`` gives four independent producers, each feeding only
the tabs its own worker serves.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from dash import Patch, dcc, html, set_props
from quart import Quart, request

from quartdash import DashBlueprint, broadcast

PERIOD = float(os.environ.get("BROADCAST_CHART_PERIOD", "0.25"))
WINDOW = 240  # points on the chart
WORKER = os.getpid()

ticks = broadcast.Topic("broadcast-chart")


def reading(tick: int) -> float:
    """The upstream's value at ``tick``: a function of the tick alone, so the
    stream stays the same if another worker takes over producing it."""
    t = tick * PERIOD
    noise = random.Random(tick).gauss(0.0, 0.6)
    return round(10 * math.sin(t / 6) + 3 * math.sin(t / 1.7) + noise, 3)


async def produce() -> None:
    """The one upstream: a point every PERIOD seconds, paced on the wall clock."""
    while True:
        tick = math.floor(time.time() / PERIOD) + 1
        await asyncio.sleep(max(0.0, tick * PERIOD - time.time()))
        stamp = datetime.fromtimestamp(tick * PERIOD, UTC).isoformat(timespec="milliseconds")
        await ticks.publish({"tick": tick, "t": stamp, "value": reading(tick),
                             "producer": WORKER})


def empty_figure() -> dict:
    return {
        "data": [{"type": "scatter", "mode": "lines", "x": [], "y": [],
                  "line": {"width": 2}}],
        "layout": {"margin": {"l": 40, "r": 10, "t": 10, "b": 40}, "height": 360,
                   "xaxis": {"type": "date"}, "yaxis": {"range": [-15, 15]}},
    }


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("broadcast_chart", __name__, url_prefix=prefix,
                        websocket_callbacks=True)
    app.title = "Broadcast chart"
    app.layout = html.Div([
        html.H4("One feed, every viewer"),
        html.Div(id="banner", children="No announcement yet.", style={"fontWeight": "bold"}),
        dcc.Graph(id="chart", figure=empty_figure(), config={"displayModeBar": False}),
        html.Div(id="last", children="Waiting for the first point..."),
        html.Div(id="served-by"),
    ])

    @app.callback(persistent=True)
    async def follow_chart() -> None:
        set_props("served-by", {"children": f"This tab is served by worker {WORKER}."})
        shown = 0
        # One iteration per tab; it ends by itself when the tab goes away.
        async for point in ticks.subscribe(maxsize=WINDOW):
            figure = Patch()
            figure["data"][0]["x"].append(point["t"])
            figure["data"][0]["y"].append(point["value"])
            shown += 1
            if shown > WINDOW:  # keep a sliding window
                del figure["data"][0]["x"][0]
                del figure["data"][0]["y"][0]
            set_props("chart", {"figure": figure})
            set_props("last", {"children": f"tick {point['tick']}: {point['value']:+.3f} "
                                            f"(produced by worker {point['producer']})"})

    @app.while_app_serving
    async def run_the_producer() -> AsyncGenerator[None, None]:
        # Every worker starts this; run_exclusive lets only one of them produce.
        task = asyncio.create_task(broadcast.run_exclusive("broadcast-chart-producer", produce))
        yield
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        await broadcast.close()

    @app.post("/announce")
    async def announce() -> dict:
        """Show a line of text on every tab of the app, in every worker."""
        text = (await request.get_data(as_text=True)).strip()[:200] or "(empty announcement)"
        await broadcast.set_props("banner", {"children": text}, app=app)
        return {"announced": text, "worker": WORKER}

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
