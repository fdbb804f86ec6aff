"""The app the reliability tests and bench/soak.py attack.

Limits come from ``REL_*`` environment variables so one module serves every
scenario (the ``serve_app`` fixture passes ``env=``). ``GET /_rel/stats``
reports what must not leak: live asyncio tasks, session sessions, pending
``get_prop`` futures, running callbacks, RSS and open file descriptors, plus
counters of callback starts and cleanups and the close code of every ended
session.

Environment: ``REL_MAX_MESSAGE_SIZE`` (65536), ``REL_MAX_BATCH`` (20),
``REL_MAX_MPS`` (200), ``REL_MAX_CONCURRENT`` (8), ``REL_MAX_RENDERERS`` (4),
``REL_MAX_PENDING`` (10000), ``REL_SEND_TIMEOUT`` (30), ``REL_SHUTDOWN_GRACE``
(2), ``REL_INACTIVITY_MS``, ``REL_ALLOWED_ORIGINS`` (comma-separated),
``REL_ALLOW_MISSING_ORIGIN``, ``REL_DEBUG`` (dev tools on), ``REL_TICK``
(persistent callback period, 0.05 s), ``REL_SLOW_SECONDS`` (60),
``REL_STUBBORN`` (add a persistent callback that ignores is_shutdown),
``REL_TRACK_RENDERERS`` (per-tab records; off in the soak),
``REL_MAX_PENDING_BYTES`` (16 MiB), ``REL_MAX_RETAINED_BYTES`` (4 MiB),
``REL_ALLOWED_HOSTS`` (comma-separated), ``REL_RESUME_TIMEOUT`` (30),
``REL_TRACEMALLOC`` (``GET /_rel/tracemalloc`` diffs allocations).
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections import Counter
from typing import Any

from dash import Input, Output, Patch, State, ctx, dcc, hooks, html, set_props

from quartdash import Dash, signals

ENV = os.environ


def _env(name: str, default: str) -> str:
    return ENV.get(f"REL_{name}", default)


def _cleanup(kind: str, how: str = "") -> None:
    COUNTERS[f"{kind}_cleanup"] += 1
    if TRACK_RENDERERS:
        # The SIGTERM test reads these lines from the server's output: the
        # process is gone by the time it could ask /_rel/stats.
        print(f"cleanup {kind} via={how}", flush=True)


app = Dash(
    __name__,
    websocket_allowed_origins=[o for o in _env("ALLOWED_ORIGINS", "").split(",") if o],
    websocket_allow_missing_origin=_env("ALLOW_MISSING_ORIGIN", "0") == "1",
    websocket_inactivity_timeout=int(_env("INACTIVITY_MS", "300000")),
    websocket_max_message_size=int(_env("MAX_MESSAGE_SIZE", "65536")),
    websocket_max_batch=int(_env("MAX_BATCH", "20")),
    websocket_max_messages_per_second=int(_env("MAX_MPS", "200")),
    websocket_max_concurrent_callbacks=int(_env("MAX_CONCURRENT", "8")),
    websocket_max_renderers=int(_env("MAX_RENDERERS", "4")),
    websocket_max_pending=int(_env("MAX_PENDING", "10000")),
    websocket_max_pending_bytes=int(_env("MAX_PENDING_BYTES", str(16 * 1024 * 1024))),
    websocket_max_retained_bytes=int(_env("MAX_RETAINED_BYTES", str(4 * 1024 * 1024))),
    allowed_hosts=[h for h in _env("ALLOWED_HOSTS", "").split(",") if h],
    websocket_send_timeout=float(_env("SEND_TIMEOUT", "30")),
    websocket_shutdown_grace=float(_env("SHUTDOWN_GRACE", "2")),
    websocket_resume_timeout=float(_env("RESUME_TIMEOUT", "30")),
)
live = app.quartdash_live
if _env("DEBUG", "0") == "1":
    # What app.run(debug=True) turns on, without running the dev server.
    app.enable_dev_tools(debug=True, dev_tools_hot_reload=False,
                         dev_tools_disable_version_check=True)

TICK = float(_env("TICK", "0.05"))
SECRET = "s3cr3t-token-7f1c"  # must never reach a client outside debug mode

COUNTERS: Counter[str] = Counter()
# Per-renderer bookkeeping grows with every new tab id: the soak turns it off
# so that its RSS figures show quartdash, not this app's own records.
TRACK_RENDERERS = _env("TRACK_RENDERERS", "1") == "1"
PERSISTENT_STARTS: Counter[str] = Counter()  # renderer id -> instances started
PERSISTENT_LIVE: Counter[str] = Counter()  # renderer id -> instances running now
CLOSE_CODES: Counter[str] = Counter()  # close code ("None": the client left) -> sessions

app.layout = html.Div([
    html.Button("echo", id="echo-btn"),
    dcc.Input(id="echo-in", value="x"),
    html.Div(id="echo-out"),
    html.Button("http", id="http-btn"),
    html.Div(id="http-out"),
    html.Button("slow", id="slow-btn"),
    html.Div(id="slow-out"),
    html.Button("stream", id="stream-btn"),
    html.Div(id="stream-out"),
    html.Div(id="stream-live"),
    html.Button("getprop", id="gp-btn"),
    dcc.Input(id="gp-in", value="initial"),
    html.Div(id="gp-out"),
    html.Button("boom", id="boom-btn"),
    html.Div(id="boom-out"),
    html.Button("http boom", id="http-boom-btn"),
    html.Div(id="http-boom-out"),
    html.Button("blast", id="blast-btn"),
    html.Div(id="blast-out"),
    html.Button("big", id="big-btn"),
    html.Div(id="big-out"),
    html.Div(id="tick", children="0"),
    html.Div(id="renderer"),
    html.Button("blocking", id="blocking-btn"),
    html.Div(id="blocking-out"),
    html.Button("quick", id="quick-btn"),
    html.Div(id="quick-out"),
])


@app.callback(Output("blocking-out", "children"), Input("blocking-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
def blocking(n_clicks: int) -> str:
    """A plain def callback that holds a pool thread for a second."""
    time.sleep(1.0)
    return "blocked"


@app.callback(Output("quick-out", "children"), Input("quick-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
def quick(n_clicks: int) -> str:
    """A plain def callback that needs a pool thread only for a moment."""
    return f"quick {n_clicks}"


@app.callback(Output("echo-out", "children"), Input("echo-btn", "n_clicks"),
              State("echo-in", "value"), prevent_initial_call=True, websocket=True)
async def echo(n_clicks: int, value: str) -> str:
    COUNTERS["echo"] += 1
    return f"{n_clicks}:{value}"


@app.callback(Output("http-out", "children"), Input("http-btn", "n_clicks"),
              prevent_initial_call=True)
async def http_only(n_clicks: int) -> str:
    return f"http {n_clicks}"


# on_retrigger="parallel": the limit tests pile up many runs of this one
# callback from one tab (the default, newest-wins, would keep only the last).
@app.callback(Output("slow-out", "children"), Input("slow-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True, on_retrigger="parallel")
async def slow(n_clicks: int) -> str:
    COUNTERS["slow_started"] += 1
    how = "returned"
    try:
        await asyncio.sleep(float(_env("SLOW_SECONDS", "60")))
    except asyncio.CancelledError:
        how = "cancelled"
        raise
    finally:
        _cleanup("slow", how)
    return "slow done"


@app.callback(Output("stream-out", "children"), Input("stream-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def stream(n_clicks: int) -> str:
    COUNTERS["stream_started"] += 1
    i = 0
    try:
        while True:
            i += 1
            set_props("stream-live", {"children": i})
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:
        COUNTERS["stream_cancelled"] += 1
        raise
    finally:
        COUNTERS["stream_cleanup"] += 1


@app.callback(Output("gp-out", "children"), Input("gp-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def getprop(n_clicks: int) -> str:
    COUNTERS["getprop_started"] += 1
    try:
        value = await ctx.websocket.get_prop("gp-in", "value", timeout=60)
    except asyncio.CancelledError:
        COUNTERS["getprop_cancelled"] += 1
        raise
    finally:
        COUNTERS["getprop_cleanup"] += 1
    return f"got {value}"


@app.callback(Output("boom-out", "children"), Input("boom-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def boom(n_clicks: int) -> str:
    raise RuntimeError(f"boom with {SECRET} in {__file__}")


@app.callback(Output("http-boom-out", "children"), Input("http-boom-btn", "n_clicks"),
              prevent_initial_call=True)
async def http_boom(n_clicks: int) -> str:
    raise RuntimeError(f"http boom with {SECRET} in {__file__}")


@app.callback(Output("blast-out", "children"), Input("blast-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def blast(n_clicks: int) -> str:
    """Push big Patches as fast as possible: only a reader keeps up."""
    COUNTERS["blast_started"] += 1
    chunk = "y" * 16_384
    try:
        while True:
            patch = Patch()
            patch.append(chunk)
            set_props("blast-out", {"children": patch})
            await asyncio.sleep(0)
    finally:
        COUNTERS["blast_cleanup"] += 1


@app.callback(Output("big-out", "children"), Input("big-btn", "n_clicks"),
              prevent_initial_call=True, websocket=True)
async def big(n_clicks: int) -> str:
    """Push a 256 KiB value to one property, over and over: coalesced, never queued."""
    COUNTERS["big_started"] += 1
    i = 0
    try:
        while True:
            i += 1
            set_props("big-out", {"children": f"{i}:" + "z" * 262_144})
            await asyncio.sleep(0.001)
    finally:
        COUNTERS["big_cleanup"] += 1


@app.callback(persistent=True)
async def ticker() -> None:
    ws = ctx.websocket
    rid = ws.renderer_id
    if TRACK_RENDERERS:
        PERSISTENT_STARTS[rid] += 1
        PERSISTENT_LIVE[rid] += 1
    COUNTERS["persistent_started"] += 1
    set_props("renderer", {"children": rid})
    n = 0
    how = "error"
    try:
        while not ws.is_shutdown:
            n += 1
            set_props("tick", {"children": str(n)})
            await asyncio.sleep(TICK)
        COUNTERS["persistent_saw_shutdown"] += 1
        how = "is_shutdown"
    except asyncio.CancelledError:
        COUNTERS["persistent_cancelled"] += 1
        how = "cancelled"
        raise
    finally:
        if TRACK_RENDERERS:
            PERSISTENT_LIVE[rid] -= 1
        _cleanup("persistent", how)


if _env("STUBBORN", "0") == "1":

    @app.callback(persistent=True)
    async def stubborn() -> None:
        """A persistent callback that never looks at is_shutdown: it must be cancelled."""
        COUNTERS["stubborn_started"] += 1
        how = "returned"
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            how = "cancelled"
            raise
        finally:
            _cleanup("stubborn", how)


@hooks.websocket_connect()
def crashing_hook(ws: Any) -> None:
    """A connect hook with a bug: the client must learn nothing from it."""
    if ws.headers.get("x-crash-hook"):
        raise RuntimeError(f"hook crashed with {SECRET}")


def _on_disconnect(sender: Any, session: Any = None, code: int | None = None, **_: Any) -> None:
    CLOSE_CODES[str(code)] += 1


signals.session_disconnected.connect(_on_disconnect, sender=live, weak=False)

asgi = app.asgi


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@asgi.get("/_rel/stats")
async def stats() -> dict[str, Any]:
    sessions = list(live.sessions)
    return {
        "tasks": len(asyncio.all_tasks()),
        "sessions": len(sessions),
        "pending_props": sum(len(b.reads) for b in sessions),
        "runs": sum(len(b.runs) for b in sessions),
        "outbox": sum(len(b.outbox) for b in sessions),
        "queued_bytes": sum(b.outbox.bytes for b in sessions),
        "retained_bytes": sum(b.retained.used for b in sessions),
        "counters": dict(COUNTERS),
        "persistent_starts": dict(PERSISTENT_STARTS),
        "persistent_live": {k: v for k, v in PERSISTENT_LIVE.items() if v},
        "close_codes": CLOSE_CODES,
        "rss": _rss(),
        "fds": len(os.listdir("/proc/self/fd")),
        "pid": os.getpid(),
    }


@asgi.post("/_rel/gc")
async def collect() -> dict[str, int]:
    return {"collected": gc.collect()}


if _env("TRACEMALLOC", "0") == "1":  # diagnosing a growing RSS
    import tracemalloc

    tracemalloc.start(10)
    _snapshots: list[Any] = []

    @asgi.get("/_rel/tracemalloc")
    async def allocations() -> dict[str, Any]:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        top = []
        if _snapshots:
            for stat in snapshot.compare_to(_snapshots[-1], "traceback")[:8]:
                top.append({"size_diff": stat.size_diff, "count_diff": stat.count_diff,
                            "where": stat.traceback.format()[-6:]})
        _snapshots[:] = [snapshot]
        return {"top": top}
