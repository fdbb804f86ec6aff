"""``ctx.websocket``: what a callback running over the WebSocket talks to."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

from ..types import Identity, SessionPort, Tab
from ..wire.protocol import check_event_name, check_prop_path

__all__ = ["RESERVED_EVENT_NAMES", "WebSocketHandle"]

# Events quartdash itself sends to window.quartdash.on(...) handlers: an app
# event may not take these names (nor any starting with "quartdash"), so the
# two can never be confused in the page.
RESERVED_EVENT_NAMES = frozenset({"continuity-lost", "events-lost"})


def check_app_event_name(name: Any) -> str:
    """An app event's name, refused when quartdash reserves it."""
    checked = check_event_name(name)
    if checked in RESERVED_EVENT_NAMES or checked.startswith("quartdash"):
        raise ValueError(f"the event name {checked!r} is reserved by quartdash")
    return checked


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

    __slots__ = ("_owner", "_renderer", "_session")

    def __init__(self, session: SessionPort, renderer: Tab, owner: Any = None) -> None:
        self._session = session
        self._renderer = renderer
        self._owner = owner  # the session's record of the run (None: no run)

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
    def owner(self) -> Any:
        """The session's record of the callback run this handle serves (or None)."""
        return self._owner

    @property
    def superseded(self) -> bool:
        """True once a newer run of the same callback for the same tab replaced
        this one (on_retrigger="cancel"): nothing it sends reaches the page."""
        return bool(getattr(self._owner, "superseded", False))

    @property
    def is_shutdown(self) -> bool:
        """True once the connection is closing, this tab went away, or this run
        was superseded by a newer one."""
        return self._session.closed or self._renderer.left or self.superseded

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
            session.push_prop(self._renderer, component_id, prop_name, value, is_patch,
                              self._owner)
        else:
            # A sync callback's worker thread: encoded here, now, so the value
            # sent is the value checked (the callback may change it after).
            frame = session.encode_prop(self._renderer, component_id, prop_name, value)
            session.loop.call_soon_threadsafe(
                session.push_prop_frame, self._renderer, component_id, prop_name, frame,
                is_patch, self._owner)

    def push_output(self, component_id: str, prop_name: str, value: Any,
                    is_patch: bool) -> None:
        """Push a value a streaming callback yielded for one of its own outputs
        (``component_id`` as Dash stringifies it). For quartdash's glue, on the
        event loop: declared outputs are not checked by the ``set_props``
        policy, as returned values are not."""
        self._session.push_prop(self._renderer, component_id, prop_name, value, is_patch,
                                self._owner)

    async def set_prop(
        self, component_id: str | dict[str, Any], prop_name: str, value: Any
    ) -> None:
        """Async spelling of :meth:`set_prop_sync`, kept for Dash compatibility."""
        self.set_prop_sync(component_id, prop_name, value)

    def send_event_sync(self, name: str, data: Any = None) -> None:
        """Send an event to this tab's JavaScript: ``window.quartdash.on(name,
        handler)`` gets ``data`` (any JSON value). Safe from a ``def`` callback's
        worker thread too.

        Events are ordered with everything else the tab receives and are never
        coalesced. They wait within the connection's event budget
        (``websocket_max_pending_event_bytes``); one that does not fit is not
        sent and the tab gets an ``events-lost`` event instead. Raises
        ``TypeError`` for a bad name or data that is not JSON, ``ValueError``
        for a name quartdash reserves.
        """
        session = self._session
        name = check_app_event_name(name)
        frame = session.encode_event(self._renderer, name, data)  # here: errors raise here
        if threading.get_ident() == session.thread_id:
            session.push_event_frame(self._renderer, frame, self._owner)
        else:
            session.loop.call_soon_threadsafe(session.push_event_frame, self._renderer, frame,
                                              self._owner)

    async def send_event(self, name: str, data: Any = None) -> bool:
        """Async spelling of :meth:`send_event_sync`. Returns False when the
        event did not fit the event budget (the tab is told it lost events)."""
        session = self._session
        name = check_app_event_name(name)
        frame = session.encode_event(self._renderer, name, data)
        if _running_loop() is session.loop:
            return session.push_event_frame(self._renderer, frame, self._owner)
        future: asyncio.Future[bool] = asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(
                _call(session.push_event_frame, self._renderer, frame, self._owner),
                session.loop))
        return await future

    async def get_prop(
        self, component_id: str | dict[str, Any], prop_name: str, timeout: float = 30.0,
        *, path: list[str | int] | None = None,
    ) -> Any:
        """Ask this tab for the current value of ``component_id.prop_name``.

        ``path`` (Dash 4.5's spelling) reads one item deep inside the value
        instead of all of it: ``path=[5000, "price"]`` reads
        ``rowData[5000]["price"]``. Strings select keys, integers list items
        (negative from the end); a location that does not exist reads None;
        ``None`` or ``[]`` reads the whole value. quartdash's page helper
        reads the path in the page, so only that item crosses the network.

        Raises ``TimeoutError`` when no answer comes within ``timeout`` seconds
        and :class:`dash.exceptions.WebsocketDisconnected` once the connection
        or the tab is gone.
        """
        path = check_prop_path(path)
        session = self._session
        coro = session.get_prop(self._renderer, stringify_id(component_id), prop_name, timeout,
                                path)
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


async def _call(function: Any, *args: Any) -> Any:
    return function(*args)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
