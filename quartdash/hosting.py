"""Host: one Dash app as quartdash serves it.

Ties together what both front doors (:class:`quartdash.Dash` and
:class:`quartdash.DashBlueprint`) share: the ``dash.Dash`` object, its
WebSocket settings, the thread pool for ``def`` callbacks, the connection
hooks and the set of live session brokers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dash
from dash._callback import GLOBAL_CALLBACK_MAP

from . import __version__
from .backend import QuartdashResponseAdapter, QuartdashServer
from .config import WebSocketConfig
from .sanitize import PropPolicy
from .wire.protocol import CloseCode

if TYPE_CHECKING:
    from .broker import SessionBroker

log = logging.getLogger("quartdash")

Hook = Callable[..., Any]

# Every Host in the process, so a server shutdown can close all sessions.
live_hosts: weakref.WeakSet[Host] = weakref.WeakSet()


class HostedDash(dash.Dash):
    """``dash.Dash`` wired to quartdash: its own backend and SharedWorker."""

    quartdash_host: Host
    _quartdash_mounted = False

    def init_app(self, app: Any = None, **kwargs: Any) -> None:
        super().init_app(app, **kwargs)
        self._quartdash_mounted = True
        self.setup_startup_routes()

    def setup_startup_routes(self) -> None:
        # Dash registers its startup routes (Dash.add_startup_route) at the end
        # of __init__, once. Both front doors build the app with server=False
        # and mount it later, so there they would land on the throwaway Quart
        # app Dash made: register them when the app is mounted instead.
        if self._quartdash_mounted:
            super().setup_startup_routes()

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        # A page with no WebSocket callback opens no socket at all.
        uses_ws = self.quartdash_host.config.enabled or any(
            spec.get("websocket") or spec.get("persistent") for spec in self._callback_list
        )
        if not uses_ws:
            config.pop("websocket", None)
        return config

    def _setup_server(self) -> None:
        first = not self._got_first_request["setup_server"]
        super()._setup_server()
        if first:
            # A persistent callback only makes sense over the WebSocket: mark
            # it so, or the renderer would post it over HTTP (ctx.websocket None).
            for spec in self._callback_list:
                if spec.get("persistent"):
                    spec["websocket"] = True
                    self.callback_map[spec["output"]]["websocket"] = True

    def _generate_scripts_html(self) -> str:
        # The page helper must run before dash-renderer creates its worker.
        helper = (f'<script src="{self.config.requests_pathname_prefix}'
                  f'_quartdash/page.js?v={__version__}"></script>')
        return helper + super()._generate_scripts_html()

    def _get_worker_url(self) -> str:
        config = self.quartdash_host.config
        return (
            f"{self.config.requests_pathname_prefix}_quartdash/ws-worker.js"
            f"?v={__version__}&heartbeat={config.heartbeat_interval}"
            f"&inactivity={config.inactivity_timeout}"
        )


class Host:
    """One Dash app as quartdash serves it (``app.host`` / ``bp.host``).

    The sender of every signal about the app; ``brokers`` holds its live
    sessions.
    """

    def __init__(self, dash_app: dash.Dash, config: WebSocketConfig) -> None:
        self.dash = dash_app
        self.config = config
        self.executor = ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="quartdash-callback"
        )
        self.brokers: set[SessionBroker] = set()
        # What the sessions that already ended pushed and sent (session_counts).
        self.closed_props_pushed = 0
        self.closed_frames_sent = 0
        self.connect_hooks: list[Hook] = []
        self.own_message_hooks: list[Hook] = []
        self.shutdown_grace = config.shutdown_grace
        self.prop_policy = PropPolicy(config.trusted_props)
        backend = dash_app.backend
        assert isinstance(backend, QuartdashServer)
        backend.host = self
        dash_app.quartdash_host = self  # type: ignore[attr-defined]
        live_hosts.add(self)

    # -- what the broker asks ---------------------------------------------------------

    @property
    def debug(self) -> bool:
        """True when dev tools are on: tracebacks may reach the browser."""
        error_mode = getattr(self.dash.backend, "error_mode", "hide")
        return bool(self.dash._dev_tools.get("ui")) or error_mode != "hide"

    def callback_spec(self, callback_id: str) -> dict[str, Any] | None:
        spec = self.dash.callback_map.get(callback_id)
        if spec is None and callback_id in GLOBAL_CALLBACK_MAP:
            self.dash._setup_server()  # a dash.callback not yet adopted by the app
            spec = self.dash.callback_map.get(callback_id)
        return spec

    def persistent_callback_ids(self) -> list[str]:
        self.dash._setup_server()
        return [spec["output"] for spec in self.dash._callback_list if spec.get("persistent")]

    def response_adapter(self) -> QuartdashResponseAdapter:
        return QuartdashResponseAdapter()

    def message_hooks(self) -> list[Hook]:
        return [*self.dash._hooks.get_hooks("websocket_message"), *self.own_message_hooks]

    def all_connect_hooks(self) -> list[Hook]:
        return [*self.dash._hooks.get_hooks("websocket_connect"), *self.connect_hooks]

    async def run_hooks(self, hooks: list[Hook], ws: Any, *args: Any) -> tuple[int, str] | None:
        """Dash's hook contract: ``False`` rejects with 4001, ``(code, reason)``
        rejects with that code, anything else accepts; a hook that raises rejects
        (the error is logged, not sent)."""
        for hook in hooks:
            try:
                result = hook(ws, *args)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("WebSocket hook %r raised; rejecting", hook)
                return (CloseCode.REJECTED, "Rejected")
            if result is False:
                return (CloseCode.REJECTED, "Rejected by hook")
            if isinstance(result, tuple) and len(result) == 2:
                return (int(result[0]), str(result[1]))
        return None

    # -- lifecycle ------------------------------------------------------------------------

    async def close_all(self, code: int = CloseCode.GOING_AWAY, reason: str = "Server shutdown",
                        grace: float | None = None) -> None:
        """Close every session of this app and wait for their callbacks to end."""
        if grace is not None:
            self.shutdown_grace = grace
        brokers = list(self.brokers)
        for broker in brokers:
            broker.request_close(code, reason)
        tasks = [b._serve_task for b in brokers if b._serve_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=(grace or self.config.shutdown_grace) * 2 + 1)


@dataclass(frozen=True)
class SessionCounts:
    """What :func:`session_counts` returns: a snapshot, not a live view."""

    sessions: int
    """Open WebSocket connections (a browser shares one per app among its tabs)."""
    tabs: int
    """Tabs (dash-renderers) joined on those connections."""
    props_pushed: int
    """``set_props`` values pushed since the apps started, ended sessions included:
    a counter that only grows; its change over time is the push rate."""
    frames_sent: int
    """WebSocket frames sent since the apps started, ended sessions included."""


def session_counts(*apps: Any) -> SessionCounts:
    """Count the live sessions and tabs of ``apps``, and what they pushed.

    ``apps``: ``quartdash.Dash`` or ``DashBlueprint`` objects (or their
    ``.host``); none means every quartdash app in this process. Costs one
    pass over the open sessions: call it on the event loop, e.g. once a
    second from a persistent callback, rather than per push.
    """
    hosts = [_host_of(app) for app in apps] if apps else list(live_hosts)
    sessions = tabs = pushed = frames = 0
    for host in hosts:
        pushed += host.closed_props_pushed
        frames += host.closed_frames_sent
        for broker in list(host.brokers):
            sessions += 1
            tabs += len(broker.renderers)
            pushed += broker.props_pushed
            frames += broker.frames_sent
    return SessionCounts(sessions, tabs, pushed, frames)


def _host_of(app: Any) -> Host:
    host = app if isinstance(app, Host) else getattr(app, "host", None)
    if not isinstance(host, Host):
        raise TypeError(f"session_counts() takes quartdash apps or hosts, not {app!r}")
    return host


async def close_all_sessions(code: int = CloseCode.GOING_AWAY, reason: str = "Server shutdown",
                             grace: float | None = None) -> None:
    """Close every quartdash session in this process (server shutdown).

    ``grace`` defaults to each app's ``websocket_shutdown_grace``; keep that
    below hypercorn's ``--graceful-timeout`` (3 s by default), which cancels
    whatever is still running when it expires.
    """
    hosts = list(live_hosts)
    if hosts:
        await asyncio.gather(*(host.close_all(code, reason, grace) for host in hosts))
