"""11. Handling disconnections: cleanup when the tab goes away.

What to look at: two loops run for this tab.

* A **persistent** loop (started when the tab connects) checks
  ``ws.is_shutdown`` in its loop condition and cleans up after the loop.
* An **event-triggered** loop (click "Start long task") runs until it gets
  ``asyncio.CancelledError`` and cleans up in its ``except`` block.

Open ``cleanup-status`` (linked on the page) in another window, then close
this tab: within a second or so both cleanups show up there (and in the
server log). Other tabs of the same browser share the WebSocket and keep
running: only the closed tab's callbacks end.

Run alone: ``hypercorn examples.disconnections:asgi`` or ``python -m examples.disconnections``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import Any

from dash import Input, Output, ctx, html, set_props
from quart import Quart

from quartdash import DashBlueprint

log = logging.getLogger(__name__)


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("disconnections", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Handling disconnections"
    counts: Counter[str] = Counter()
    events: deque[dict[str, Any]] = deque(maxlen=50)

    def record(what: str) -> None:
        counts[what] += 1
        events.append({"at": round(time.time(), 3), "event": what})
        log.info("disconnections example: %s", what)

    @app.get("/cleanup-status")
    async def cleanup_status() -> dict[str, Any]:
        """What ran and what was cleaned up, as JSON (an ordinary Quart route)."""
        return {
            "persistent_running": counts["persistent started"] - counts["persistent cleaned up"],
            "tasks_running": counts["task started"] - counts["task cleaned up"],
            "counts": dict(counts),
            "events": list(events),
        }

    app.layout = html.Div([
        html.H4("Handling disconnections"),
        html.Div(id="output", children="Persistent loop: starting..."),
        html.Button("Start long task", id="btn"),
        html.Div(id="progress"),
        html.Div(id="status"),
        html.P(html.A("cleanup-status (JSON)", href=app.get_relative_path("/cleanup-status"),
                      target="_blank")),
    ])

    @app.callback(persistent=True)
    async def background_loop():
        ws = ctx.websocket
        record("persistent started")
        ticks = 0
        while not ws.is_shutdown:
            ticks += 1
            set_props("output", {"children": f"Persistent loop: tick {ticks}"})
            await asyncio.sleep(1)
        # Connection closed -- clean up resources here
        record("persistent cleaned up")

    @app.callback(Output("status", "children"), Input("btn", "n_clicks"),
                  prevent_initial_call=True)
    async def long_task(n):
        record("task started")
        seconds = 0
        try:
            while True:
                set_props("progress", {"children": f"Working... ({seconds} s)"})
                seconds += 1
                await asyncio.sleep(1)
        except asyncio.CancelledError:
            # Client disconnected -- clean up resources here
            record("task cleaned up")
        return "Done"

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
