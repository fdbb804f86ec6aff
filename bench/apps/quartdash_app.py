"""Contender: quartdash, served by hypercorn.

    hypercorn quartdash_app:asgi

Written against quartdash's target API (shared/DESIGN.md): the Dash app is the
same as dash_quart_app.py except for the import of ``Dash`` and ``asgi =
app.asgi``.  Until the quartdash package imports, bench/run.py skips this
contender and prints why.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import _common as common
from dash import Input, Output, callback, ctx, set_props

from quartdash import Dash, signals

app = Dash(
    __name__,
    websocket_callbacks=True,
    # The default flood limit (200 unsolicited messages/s): answers to
    # get_prop do not count, so scenario (b) runs with it as shipped.
    websocket_max_messages_per_second=int(os.environ.get("BENCH_MAX_MSGS_PER_S", "200")),
    # def HTTP callbacks on the event loop once proven fast (docs/deployment.md)
    inline_threshold=float(os.environ.get("BENCH_INLINE_THRESHOLD", "0.001")),
    # How long a dropped session waits for its client (bench/resume.py); 30 s
    # is quartdash's default, 0 turns resume off.
    websocket_resume_timeout=float(os.environ.get("BENCH_RESUME_TIMEOUT", "30")),
    # ms without a non-heartbeat message before the server closes a session
    # (quartdash's default: 300,000); the scale scenario keeps idle sessions
    # open longer than that.
    websocket_inactivity_timeout=int(os.environ.get("BENCH_INACTIVITY_TIMEOUT", "300000")),
)
app.layout = common.dash_layout()


@callback(persistent=True)
async def live():
    ws = ctx.websocket
    who = common.renderer_of(ws)
    async for value in common.values(lambda: ws.is_shutdown, common.dash_append, who):
        set_props(common.LIVE_ID, {"children": value})


@callback(Output("echo-out", "children"), Input("btn", "n_clicks"), prevent_initial_call=True)
async def echo(n_clicks):
    ws = ctx.websocket
    value = None
    for _ in range(common.getprop_count(n_clicks)):
        value = await ws.get_prop("inp", "value")
        common.STATS["getprops"] += 1
    return value


@callback(Output("http-out", "children"), Input("http-btn", "n_clicks"))
def http_cb(n_clicks):
    common.STATS["http"] += 1
    return f"clicked {n_clicks}"


common.add_figure_callback()


asgi = app.asgi  # the Quart app


# What the server saw of resumes (bench/resume.py): sessions detached,
# resumed (and the messages replayed), resumes refused.
RESUME = Counter()


def _count(what: str):
    def receiver(sender, **kw):
        RESUME[what] += 1
        RESUME["replayed"] += kw.get("replayed", 0)

    return receiver


for _signal, _what in ((signals.session_detached, "detached"),
                       (signals.session_resumed, "resumed"),
                       (signals.resume_failed, "resume_failed")):
    _signal.connect(_count(_what), sender=app.live, weak=False)


@asgi.route("/_bench/stats")
async def bench_stats():
    sessions = list(app.live.sessions)
    states = Counter(s.state.value for s in sessions)
    # distinct callback runs per session ({"1": n}: every session runs its
    # persistent callback and nothing else; a request joining a running
    # persistent callback is one more key of the same run)
    runs = Counter(str(len(list(s.runs))) for s in sessions)
    return {**common.stats(), "time": time.time(), "resume": dict(RESUME),
            "session_states": dict(states), "sessions": len(sessions),
            "runs_per_session": dict(runs), "tasks": len(asyncio.all_tasks())}
