"""The glue: quartdash's side of Quart and Dash, and the only place that knows both.

* :mod:`~quartdash.hosting.dash_internals` — every private Dash attribute,
  and :class:`HostedDash`;
* :mod:`~quartdash.hosting.live` — :class:`LiveApp`, one app's live side
  (what a session knows as its app);
* :mod:`~quartdash.hosting.backend` — Dash's server backend on a Quart app
  or blueprint;
* :mod:`~quartdash.hosting.callback_route` and
  :mod:`~quartdash.hosting.websocket_route` — the HTTP and WebSocket routes;
* :mod:`~quartdash.hosting.execute` — running a Dash callback;
* :mod:`~quartdash.hosting.sanitize` — what ``set_props`` may push;
* :mod:`~quartdash.hosting.serving` — the development server and shutdown.
"""

from __future__ import annotations

from ..config import WebSocketConfig
from .backend import QuartdashServer
from .dash_internals import HostedDash
from .live import (
    LiveApp,
    SessionCounts,
    close_all_sessions,
    list_sessions,
    live_apps,
    revoke,
    session_counts,
)

__all__ = ["HostedDash", "LiveApp", "QuartdashServer", "SessionCounts", "attach",
           "close_all_sessions", "list_sessions", "live_apps", "revoke", "session_counts"]


def attach(dash_app: HostedDash, config: WebSocketConfig) -> LiveApp:
    """Give a freshly built ``HostedDash`` (backend ``QuartdashServer``) its live side."""
    live = LiveApp(dash_app, config)
    dash_app.quartdash_config = config
    dash_app.quartdash_live = live
    backend = dash_app.backend
    assert isinstance(backend, QuartdashServer)
    backend.live = live
    return live
