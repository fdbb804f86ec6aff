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
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

HZ = float(os.environ.get("BENCH_HZ", "10"))
IDLE_SLEEP = float(os.environ.get("BENCH_IDLE_SLEEP", "5"))
STOP_AFTER = float(os.environ.get("BENCH_STOP_AFTER", "0"))
MAX_GETPROP = int(os.environ.get("BENCH_MAX_GETPROP", "100000"))

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


def stats() -> dict[str, float]:
    return dict(STATS)


def payload(seq: int) -> dict:
    """The value pushed into ``live.children``."""
    t = time.time()
    STATS["produced"] += 1
    STATS["last_seq"] = seq
    STATS["last_t"] = t
    return {"t": t, "seq": seq}


async def ticks(is_shutdown: Callable[[], bool]) -> AsyncIterator[int]:
    """Yield 1, 2, 3, ... at HZ per second until ``is_shutdown()``.

    Deadline-paced (no drift), never bursts to catch up: a late tick moves
    the schedule instead.  With HZ == 0 yields nothing and just sleeps until
    shutdown (an idle persistent callback).
    """
    STATS["active"] += 1
    STATS["started"] += 1
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
            yield seq
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
        ]
    )
