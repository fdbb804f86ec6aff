"""``ctx.websocket``: what a callback running over the WebSocket talks to."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

from ..types import Identity, SessionPort, Tab

__all__ = ["WebSocketHandle"]


def stringify_id(component_id: str | dict[str, Any]) -> str:
    """A component id as the renderer writes it (Dash's ``stringify_id``): a
    pattern-matching id is its keys in order, each with its JSON value."""
    if not isinstance(component_id, dict):
        return component_id

    def item(key: str, value: Any) -> str:
        text = value.to_json() if hasattr(value, "to_json") else json.dumps(value)
        return f"{json.dumps(key)}:{text}"

    return "{" + ",".join(item(k, component_id[k]) for k in sorted(component_id)) + "}"


class WebSocketHandle:
    """The WebSocket interface of one callback run, bound to the tab that asked.

    ``set_props`` inside the callback goes through :meth:`set_prop_sync` and is
    pushed at once. Safe to use from the callback's own task and, for plain
    ``def`` callbacks, from their worker thread.
    """

    __slots__ = ("_renderer", "_session")

    def __init__(self, session: SessionPort, renderer: Tab) -> None:
        self._session = session
        self._renderer = renderer

    @property
    def session(self) -> SessionPort:
        """The session (one browser connection) this callback runs in."""
        return self._session

    @property
    def renderer(self) -> Tab:
        """The tab's record in its session."""
        return self._renderer

    @property
    def renderer_id(self) -> str:
        """The tab this callback serves."""
        return self._renderer.id

    @property
    def is_shutdown(self) -> bool:
        """True once the connection is closing or this tab went away."""
        return self._session.closed or self._renderer.left

    @property
    def connection(self) -> Mapping[str, Any]:
        """The handshake's ``headers``, ``cookies``, ``path``, ``remote`` and ``origin``."""
        return self._session.connection

    @property
    def identity(self) -> Identity | None:
        """Who the app said is on the other end when the connection opened: the
        :class:`~quartdash.Identity` a connect hook returned, or None."""
        return self._session.identity

    @property
    def session_id(self) -> str:
        """The session's public id (what ``app.live.list_sessions()`` lists)."""
        return self._session.id

    def set_prop_sync(self, component_id: str | dict[str, Any], prop_name: str, value: Any) -> None:
        """Push one property value to this tab now (what ``set_props`` calls).

        Raises :class:`quartdash.UnsafePropError` for a value that would run
        code in the page (docs/security.md).
        """
        session = self._session
        component_id = stringify_id(component_id)
        # Checked here, in the caller: a refused value raises in the callback.
        value, is_patch = session.prepare_prop(component_id, prop_name, value)
        if threading.get_ident() == session.thread_id:
            session.push_prop(self._renderer, component_id, prop_name, value, is_patch)
        else:
            # A sync callback's worker thread: encoded here, now, so the value
            # sent is the value checked (the callback may change it after).
            frame = session.encode_prop(self._renderer, component_id, prop_name, value)
            session.loop.call_soon_threadsafe(
                session.push_prop_frame, self._renderer, component_id, prop_name, frame,
                is_patch)

    async def set_prop(
        self, component_id: str | dict[str, Any], prop_name: str, value: Any
    ) -> None:
        """Async spelling of :meth:`set_prop_sync`, kept for Dash compatibility."""
        self.set_prop_sync(component_id, prop_name, value)

    async def get_prop(
        self, component_id: str | dict[str, Any], prop_name: str, timeout: float = 30.0
    ) -> Any:
        """Ask this tab for the current value of ``component_id.prop_name``.

        Raises ``TimeoutError`` when no answer comes within ``timeout`` seconds
        and :class:`dash.exceptions.WebsocketDisconnected` once the connection
        or the tab is gone.
        """
        session = self._session
        coro = session.get_prop(self._renderer, stringify_id(component_id), prop_name, timeout)
        if _running_loop() is session.loop:
            return await coro
        # Called from another loop (e.g. asyncio.run inside a sync callback).
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, session.loop))

    async def close(self, code: int = 1000, reason: str = "Connection closed") -> None:
        """Close the connection from the server side.

        The calling callback may go on (to clean up) but nothing more it
        sends reaches the client; other callbacks on the connection are
        cancelled.
        """
        session = self._session
        if _running_loop() is session.loop:
            await session.close_from_callback(code, reason)
        else:
            future = asyncio.run_coroutine_threadsafe(
                session.close_from_callback(code, reason), session.loop)
            await asyncio.wrap_future(future)

    def __repr__(self) -> str:
        state = "shut down" if self.is_shutdown else "open"
        return f"<WebSocketHandle renderer={self._renderer.id!r} {state}>"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
