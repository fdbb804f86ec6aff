"""Signals: log what the sessions do, and serve live metrics at /metrics.

What to look at: open the app in a few tabs, click "Work" and "Fail", and
reload http://127.0.0.1:8050/metrics: open sessions and tabs, running
callbacks and pushes per second over the last five seconds, all counted by
receivers of quartdash's blinker signals. The server log has a line per
session, tab and callback.

Run alone: ``hypercorn examples.metrics:asgi`` or ``python -m examples.metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import Any

from dash import Input, Output, ctx, html, set_props
from quart import Quart, jsonify

from quartdash import DashBlueprint, signals

log = logging.getLogger("examples.metrics")


class Metrics:
    """Live counters for one hosted Dash app, fed by quartdash's signals."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.sessions: set[Any] = set()  # live session sessions
        self.tabs = 0
        self.callbacks = 0
        self.persistent = 0
        self.failed = 0
        self.rejected: Counter[str] = Counter()
        self._pushes_of_closed = 0
        self._samples: deque[tuple[float, int]] = deque()

    def connect(self, host: Any) -> None:
        """Receive the signals of one app only (``bp.live``, or ``app.live``)."""
        for name in ("session_connected", "session_disconnected", "renderer_joined",
                     "renderer_left", "callback_started", "callback_finished",
                     "callback_failed", "persistent_started", "persistent_stopped",
                     "connection_rejected"):
            getattr(signals, name).connect(getattr(self, f"on_{name}"), sender=host)

    # -- receivers: sync, quick, called on the event loop -------------------------

    def on_session_connected(self, host: Any, session: Any) -> None:
        self.sessions.add(session)
        log.info("session opened from %s", session.connection.get("remote"))

    def on_session_disconnected(self, host: Any, session: Any, code: int | None) -> None:
        self.sessions.discard(session)
        self._pushes_of_closed += session.props_pushed
        log.info("session closed (%s)", "client left" if code is None else f"code {code}")

    def on_renderer_joined(self, host: Any, session: Any, renderer_id: str) -> None:
        self.tabs += 1

    def on_renderer_left(self, host: Any, session: Any, renderer_id: str) -> None:
        self.tabs -= 1

    def on_callback_started(self, host: Any, **kw: Any) -> None:
        self.callbacks += 1

    def on_callback_finished(self, host: Any, callback_id: str, duration: float,
                             status: str, **kw: Any) -> None:
        self.callbacks -= 1
        log.info("callback %s: %s in %.3f s", callback_id, status, duration)

    def on_callback_failed(self, host: Any, callback_id: str, duration: float,
                           error: BaseException, persistent: bool, **kw: Any) -> None:
        self.failed += 1
        if not persistent:  # a persistent one also sends persistent_stopped
            self.callbacks -= 1
        log.warning("callback %s failed after %.3f s: %r", callback_id, duration, error)

    def on_persistent_started(self, host: Any, **kw: Any) -> None:
        self.persistent += 1

    def on_persistent_stopped(self, host: Any, **kw: Any) -> None:
        self.persistent -= 1

    def on_connection_rejected(self, host: Any, reason: str, code: int, detail: str,
                               **kw: Any) -> None:
        self.rejected[reason] += 1
        log.warning("connection rejected (%s, %s): %s", reason, code, detail)

    # -- pushes per second: sample a cheap counter, no per-push work ---------------

    def pushes_total(self) -> int:
        return self._pushes_of_closed + sum(b.props_pushed for b in self.sessions)

    def sample(self) -> float:
        """Record the push counter now; return pushes per second over the window."""
        now = time.monotonic()
        self._samples.append((now, self.pushes_total()))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / max(t1 - t0, 1.0)  # under a second of data: no bursty spike

    async def sample_forever(self, every: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)

    def snapshot(self) -> dict[str, Any]:
        return {
            "open_sessions": len(self.sessions),
            "open_tabs": self.tabs,
            "running_callbacks": self.callbacks,
            "running_persistent_callbacks": self.persistent,
            "failed_callbacks": self.failed,
            "rejected_connections": dict(self.rejected),
            "pushes_per_second": round(self.sample(), 1),
            "pushes_total": self.pushes_total(),
        }


def build(prefix: str = "/") -> DashBlueprint:
    app = DashBlueprint("metrics", __name__, url_prefix=prefix, websocket_callbacks=True)
    app.title = "Signals and metrics"
    app.layout = html.Div([
        html.Div(id="clock"),
        html.Button("Work", id="work"), html.Button("Fail", id="fail"),
        html.Div(id="work-out"), html.Div(id="fail-out"),
        html.A("metrics", href="/metrics"),
    ])

    @app.callback(persistent=True)
    async def clock():
        ws = ctx.websocket
        while not ws.is_shutdown:
            set_props("clock", {"children": time.strftime("%H:%M:%S")})
            await asyncio.sleep(0.1)  # ten pushes a second per tab

    @app.callback(Output("work-out", "children"), Input("work", "n_clicks"),
                  prevent_initial_call=True)
    async def work(n_clicks):
        for step in range(1, 21):
            set_props("work-out", {"children": f"step {step} of 20"})
            await asyncio.sleep(0.1)
        return "done"

    @app.callback(Output("fail-out", "children"), Input("fail", "n_clicks"),
                  prevent_initial_call=True)
    async def fail(n_clicks):
        raise RuntimeError("this callback always fails")

    return app


app = build()
metrics = Metrics()
metrics.connect(app.live)

asgi = Quart(__name__)
asgi.register_blueprint(app)
_sampler: set[asyncio.Task[None]] = set()


@asgi.route("/metrics")
async def metrics_view():
    return jsonify(metrics.snapshot())


@asgi.before_serving
async def start_sampling() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _sampler.add(asyncio.create_task(metrics.sample_forever()))


@asgi.after_serving
async def stop_sampling() -> None:
    for task in _sampler:
        task.cancel()


if __name__ == "__main__":
    from examples import main

    main(asgi, description=__doc__)
