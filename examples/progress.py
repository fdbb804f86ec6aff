"""12. A long-running task with a progress bar.

What to look at: click "Run job". The callback works through 20 steps and,
after each, pushes the bar's value and a label with ``set_props``, so the
``html.Progress`` fills while the callback is still running; its return
value is the final message. The button is disabled while the job runs.
"Cancel" is read with ``get_prop`` between steps: the job stops early
without any extra callback or polling.

Run alone: ``hypercorn examples.progress:asgi`` or ``python -m examples.progress``.
"""

from __future__ import annotations

import asyncio

from dash import Input, Output, ctx, html, set_props
from quart import Quart

from quartdash import DashBlueprint

STEPS = 20


async def do_step(step: int) -> None:
    """A stand-in for a slice of real work (a query, a file chunk, a model epoch)."""
    await asyncio.sleep(0.15)


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("progress", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Progress bar"

    app.layout = html.Div([
        html.Button("Run job", id="run-btn"),
        html.Button("Cancel", id="cancel-btn"),
        html.Div(html.Progress(id="progress-bar", value="0", max=str(STEPS),
                               style={"width": "20em"})),
        html.Div(id="progress-label", children="Idle"),
        html.Div(id="job-result"),
    ])

    @app.callback(
        Output("job-result", "children"),
        Input("run-btn", "n_clicks"),
        prevent_initial_call=True,
    )
    async def run_job(n_clicks):
        ws = ctx.websocket
        cancels_at_start = await ws.get_prop("cancel-btn", "n_clicks")
        set_props("run-btn", {"disabled": True})
        set_props("job-result", {"children": ""})
        try:
            for step in range(1, STEPS + 1):
                await do_step(step)
                set_props("progress-bar", {"value": str(step)})
                set_props("progress-label", {
                    "children": f"{100 * step // STEPS}% (step {step} of {STEPS})"
                })
                if await ws.get_prop("cancel-btn", "n_clicks") != cancels_at_start:
                    return f"Cancelled after {step} of {STEPS} steps"
            return f"Finished all {STEPS} steps"
        finally:
            set_props("run-btn", {"disabled": False})

    return app


asgi = Quart(__name__)
asgi.register_blueprint(build())

if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
