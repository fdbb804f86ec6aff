"""Shared pieces of the benchmark apps: the pacing loop, the layout, stats.

Every contender pushes the same payload shape, produced by the same loop:
``set_props("live", {"children": {"t": time.time(), "seq": n}})`` at
``BENCH_HZ`` pushes per second per session.

Environment:
  BENCH_HZ          pushes per second per session (default 10); 0 = the
                    persistent callback only sleeps (scenario d, idle sessions)
  BENCH_IDLE_SLEEP  seconds per sleep of an idle persistent callback (default 5)
  BENCH_STOP_AFTER  seconds after which a pushing loop stops (default 0 = never);
                    the slow-client scenario uses it to know the producer's last
  BENCH_MAX_GETPROP cap on get_prop round trips per echo request (default 100000)
  BENCH_PATCH       1: push each value as ``Patch().append(value)`` instead of
                    replacing ``children`` (a stream nothing may coalesce away:
                    bench/resume.py counts every value)
  BENCH_PRODUCER_ID 1: tag each value with its producer (``"p"``: which run of
                    the persistent callback in this process made it) and keep
                    every producer's renderer and last seq, served as
                    ``producers`` by ``/_bench/stats`` (bench/resume.py counts
                    what each tab was sent against what it applied)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

HZ = float(os.environ.get("BENCH_HZ", "10"))
IDLE_SLEEP = float(os.environ.get("BENCH_IDLE_SLEEP", "5"))
STOP_AFTER = float(os.environ.get("BENCH_STOP_AFTER", "0"))
MAX_GETPROP = int(os.environ.get("BENCH_MAX_GETPROP", "100000"))
PATCH = os.environ.get("BENCH_PATCH", "0") == "1"
PRODUCER_ID = os.environ.get("BENCH_PRODUCER_ID", "0") == "1"

LIVE_ID = "live"

# Process-wide counters, served at GET /_bench/stats by every app.
STATS: dict[str, float] = {
    "produced": 0,  # set_props calls made by all persistent callbacks
    "active": 0,  # persistent callbacks currently running
    "started": 0,  # persistent callbacks ever started
    "last_seq": 0,  # seq of the newest push (any session)
    "last_t": 0.0,
    "getprops": 0,  # get_prop round trips completed
    "http": 0,  # HTTP callback calls
}


# BENCH_PRODUCER_ID=1: producer id -> [the renderer it pushes to, the last seq
# it produced (= how many)].
PRODUCERS: dict[int, list] = {}


def stats() -> dict[str, Any]:
    out: dict[str, Any] = dict(STATS)
    if PRODUCER_ID:
        out["producers"] = PRODUCERS
    return out


def payload(seq: int) -> dict:
    """The value pushed into ``live.children``."""
    t = time.time()
    STATS["produced"] += 1
    STATS["last_seq"] = seq
    STATS["last_t"] = t
    return {"t": t, "seq": seq}


def renderer_of(ws: Any) -> str:
    """The renderer (tab) a WebSocket callback runs for: quartdash's
    ``ctx.websocket.renderer_id``, Dash's private ``_renderer_id``."""
    return str(getattr(ws, "renderer_id", None) or getattr(ws, "_renderer_id", ""))


def patch_json(value: Any) -> dict:
    """What Dash sends for ``Patch().append(value)`` (for apps without Dash)."""
    return {
        "__dash_patch_update": "__dash_patch_update",
        "operations": [{"operation": "Append", "location": [], "params": {"value": value}}],
    }


def dash_append(value: Any) -> Any:
    """``Patch().append(value)``: what the Dash-based apps push with BENCH_PATCH=1."""
    from dash import Patch

    patch = Patch()
    patch.append(value)
    return patch


async def values(is_shutdown: Callable[[], bool], patch: Callable[[Any], Any] = patch_json,
                 renderer: str = "") -> AsyncIterator[Any]:
    """Yield what the live callback pushes into ``live.children``, at HZ per
    second until ``is_shutdown()``: :func:`payload` of 1, 2, 3, ..., or with
    BENCH_PATCH=1 ``patch(payload)`` (a Dash ``Patch`` appending it).
    ``renderer``: the tab it pushes to (recorded with BENCH_PRODUCER_ID=1).

    Deadline-paced (no drift), never bursts to catch up: a late tick moves
    the schedule instead.  With HZ == 0 yields nothing and just sleeps until
    shutdown (an idle persistent callback).
    """
    STATS["active"] += 1
    STATS["started"] += 1
    producer = int(STATS["started"])
    record = PRODUCERS.setdefault(producer, [renderer, 0]) if PRODUCER_ID else None
    wrap = patch if PATCH else None
    try:
        if HZ <= 0:
            while not is_shutdown():  # noqa: ASYNC110 (the seed's idiom)
                await asyncio.sleep(IDLE_SLEEP)
            return
        loop = asyncio.get_running_loop()
        period = 1.0 / HZ
        start = nxt = loop.time()
        stop_at = start + STOP_AFTER if STOP_AFTER > 0 else float("inf")
        seq = 0
        while not is_shutdown():
            now = loop.time()
            if now >= stop_at:
                break
            seq += 1
            value = payload(seq)
            if record is not None:
                record[1] = seq
                value["p"] = producer
            yield value if wrap is None else wrap(value)
            nxt += period
            now = loop.time()
            if nxt > now:
                await asyncio.sleep(nxt - now)
            else:
                nxt = now
                await asyncio.sleep(0)
        # Stopped by STOP_AFTER: stay alive (the session is still open) but quiet.
        while not is_shutdown():  # noqa: ASYNC110 (the seed's idiom)
            await asyncio.sleep(IDLE_SLEEP)
    finally:
        STATS["active"] -= 1


def getprop_count(n_clicks: object) -> int:
    """The echo callback does ``n_clicks`` get_prop round trips (capped)."""
    try:
        k = int(n_clicks)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        k = 1
    return max(1, min(k, MAX_GETPROP))


FIGURE_POINTS = 1000


def figure(n_clicks: object):
    """The 1,000-point figure the figure callback (scenario cfig) returns."""
    import numpy as np
    import plotly.graph_objects as go

    x = np.arange(FIGURE_POINTS)
    shift = n_clicks if isinstance(n_clicks, int) else 0
    return go.Figure(go.Scatter(x=x, y=np.sin(x / 50.0 + shift), mode="lines"))


def add_figure_callback() -> None:
    """The HTTP callback returning :func:`figure`, registered with ``dash.callback``
    (every Dash-based contender picks it up when its app is set up)."""
    from dash import Input, Output, callback

    @callback(Output("fig", "figure"), Input("fig-btn", "n_clicks"))
    def http_fig(n_clicks):
        STATS["http"] += 1
        return figure(n_clicks)


def dash_layout():
    """The layout shared by every Dash-based contender."""
    from dash import dcc, html

    return html.Div(
        [
            html.Div(id=LIVE_ID),
            html.Button("echo", id="btn"),
            dcc.Input(id="inp", value="x"),
            html.Div(id="echo-out"),
            html.Button("http", id="http-btn"),
            html.Div(id="http-out"),
            html.Button("figure", id="fig-btn"),
            dcc.Graph(id="fig"),
        ]
    )
