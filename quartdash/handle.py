"""``ctx.websocket``: what a callback running over the WebSocket talks to."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from dash._utils import stringify_id
from dash.exceptions import WebsocketDisconnected

if TYPE_CHECKING:
    from .broker import Renderer, SessionBroker


class WebSocketHandle:
    """The WebSocket interface of one callback run, bound to the tab that asked.

    ``set_props`` inside the callback goes through :meth:`set_prop_sync` and is
    pushed at once. Safe to use from the callback's own task and, for plain
    ``def`` callbacks, from their worker thread.
    """

    __slots__ = ("_broker", "_renderer")

    def __init__(self, broker: SessionBroker, renderer: Renderer) -> None:
        self._broker = broker
        self._renderer = renderer

    @property
    def renderer_id(self) -> str:
        """The tab this callback serves."""
        return self._renderer.id

    @property
    def is_shutdown(self) -> bool:
        """True once the connection closed or this tab went away."""
        return self._broker.closed or self._renderer.left

    @property
    def connection(self) -> dict[str, Any]:
        """The handshake's ``headers``, ``cookies``, ``path``, ``remote`` and ``origin``."""
        return self._broker.connection

    def set_prop_sync(self, component_id: str | dict[str, Any], prop_name: str, value: Any) -> None:
        """Push one property value to this tab now (what ``set_props`` calls).

        Raises :class:`quartdash.UnsafePropError` for a value that would run
        code in the page (docs/security.md).
        """
        broker = self._broker
        if isinstance(component_id, dict):
            component_id = stringify_id(component_id)
        # Checked here, in the caller: a refused value raises in the callback.
        value = broker.prop_policy.check(component_id, prop_name, value)
        if threading.get_ident() == broker.thread_id:
            broker.push_prop(self._renderer, component_id, prop_name, value)
        else:  # a sync callback's worker thread
            broker.loop.call_soon_threadsafe(
                broker.push_prop, self._renderer, component_id, prop_name, value
            )

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
        if isinstance(component_id, dict):
            component_id = stringify_id(component_id)
        broker = self._broker
        coro = broker.get_prop(self._renderer, component_id, prop_name, timeout)
        if _running_loop() is broker.loop:
            return await coro
        # Called from another loop (e.g. asyncio.run inside a sync callback).
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, broker.loop))

    async def close(self, code: int = 1000, reason: str = "Connection closed") -> None:
        """Close the connection from the server side.

        The calling callback may go on (to clean up) but nothing more it
        sends reaches the client; other callbacks on the connection are
        cancelled.
        """
        broker = self._broker
        if _running_loop() is broker.loop:
            await broker.close(code, reason)
        else:
            future = asyncio.run_coroutine_threadsafe(broker.close(code, reason), broker.loop)
            await asyncio.wrap_future(future)

    def __repr__(self) -> str:
        state = "shut down" if self.is_shutdown else "open"
        return f"<WebSocketHandle renderer={self._renderer.id!r} {state}>"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


__all__ = ["WebSocketHandle", "WebsocketDisconnected"]
