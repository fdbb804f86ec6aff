"""Dash background callbacks (``background=True``, ``DiskcacheManager``) on quartdash.

The same app twice on one Quart app: a drop-in ``quartdash.Dash`` at
``/dash/`` and a ``DashBlueprint`` at ``/bp/``, each with its own
``DiskcacheManager`` under ``$COMPAT_BACKGROUND_CACHE``. One callback reports
progress, flips ``running`` outputs, calls ``set_props`` from the job and
can be cancelled; another is an ``async def``. ``GET /jobs`` names this
worker and the job processes alive in it. Served by hypercorn in
tests/test_dash_compat_browser.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import diskcache
import psutil
from dash import DiskcacheManager, Input, Output, State, dcc, html, set_props
from quart import Quart

from quartdash import Dash, DashBlueprint

CACHE_ROOT = Path(os.environ["COMPAT_BACKGROUND_CACHE"])
STEP_SECONDS = 0.2

asgi = Quart(__name__)


@asgi.route("/jobs")
async def jobs() -> dict[str, Any]:
    alive = [child.pid for child in psutil.Process().children(recursive=True)
             if child.status() != psutil.STATUS_ZOMBIE]
    return {"worker": os.getpid(), "alive": alive}


def manager(name: str) -> DiskcacheManager:
    return DiskcacheManager(diskcache.Cache(str(CACHE_ROOT / name)))


def build(app: Dash | DashBlueprint) -> None:
    app.layout = html.Div([
        dcc.Input(id="steps", type="number", value=4),
        html.Button("Run", id="run"),
        html.Button("Cancel", id="cancel", disabled=True),
        html.Div("idle", id="status"),
        html.Div(id="progress"),
        html.Div(id="side"),
        html.Div("no result", id="result"),
        html.Button("Run async", id="run-async"),
        html.Div("no result", id="async-result"),
    ])

    @app.callback(
        Output("result", "children"),
        Input("run", "n_clicks"),
        State("steps", "value"),
        background=True,
        progress=Output("progress", "children"),
        running=[
            (Output("run", "disabled"), True, False),
            (Output("cancel", "disabled"), False, True),
            (Output("status", "children"), "running", "stopped"),
        ],
        cancel=[Input("cancel", "n_clicks")],
        interval=100,
        prevent_initial_call=True,
    )
    def work(set_progress: Any, n_clicks: int, steps: int) -> str:
        set_props("side", {"children": f"job pid {os.getpid()}"})
        for step in range(1, steps + 1):
            time.sleep(STEP_SECONDS)
            set_progress(f"{step}/{steps}")
        return f"run {n_clicks}: {steps} steps done"

    @app.callback(Output("async-result", "children"), Input("run-async", "n_clicks"),
                  background=True, interval=100, prevent_initial_call=True)
    async def work_async(n_clicks: int) -> str:
        await asyncio.sleep(STEP_SECONDS)  # the job process runs it with asyncio.run
        return f"async run {n_clicks} in job pid {os.getpid()}"


dropin = Dash(__name__, server=asgi, url_base_pathname="/dash/",
              background_callback_manager=manager("dropin"))
build(dropin)

blueprint = DashBlueprint("bg", __name__, url_prefix="/bp",
                          background_callback_manager=manager("blueprint"))
build(blueprint)
asgi.register_blueprint(blueprint)
