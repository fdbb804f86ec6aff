"""Contender for scenario (c) only: plain Dash 4.4.1 (Flask), served by gunicorn.

    gunicorn -w 1 -k gthread --threads 8 dash_flask_app:wsgi

Flask has no WebSocket callbacks, so this app has only the HTTP callback.
"""

from __future__ import annotations

import time

import _common as common
from dash import Dash, Input, Output, callback

app = Dash(__name__)
app.layout = common.dash_layout()


@callback(Output("http-out", "children"), Input("http-btn", "n_clicks"))
def http_cb(n_clicks):
    common.STATS["http"] += 1
    return f"clicked {n_clicks}"


common.add_figure_callback()


wsgi = app.server


@wsgi.route("/_bench/stats")
def bench_stats():
    return {**common.stats(), "time": time.time()}
