"""4. Persistent callbacks: live data pushed with no Input and no Output.

What to look at: nothing to click. ``background_loop`` is declared with
``persistent=True`` and no dependencies; the server starts one instance per
open tab as soon as the tab connects, and it pushes a new reading twice a
second with ``set_props``. The browser title never shows "Updating...":
a persistent callback is not a pending request. Close the tab and the loop
sees ``ws.is_shutdown`` and ends.

Run alone: ``hypercorn examples.persistent_live:asgi`` or ``python -m examples.persistent_live``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from dash import ctx, html, set_props
from quart import Quart

from quartdash import DashBlueprint

_readings = itertools.count(1)
_temperature = 21.0


def get_latest_data() -> str:
    """A stand-in for a real data source: a drifting temperature sensor."""
    global _temperature
    _temperature += random.uniform(-0.3, 0.3)
    return f"Reading #{next(_readings)}: {_temperature:.2f} °C at {time.strftime('%H:%M:%S')}"


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("persistent_live", __name__, url_prefix=prefix,
                        websocket_callbacks=True)
    app.title = "Persistent callback"

    app.layout = html.Div([
        html.H4("Live sensor"),
        html.Div(id="live-display", children="Waiting for the first reading..."),
    ])

    @app.callback(persistent=True)
    async def background_loop():
        ws = ctx.websocket
        while not ws.is_shutdown:
            set_props("live-display", {"children": get_latest_data()})
            await asyncio.sleep(0.5)

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
