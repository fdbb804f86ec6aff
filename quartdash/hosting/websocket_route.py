"""The WebSocket route: host and origin checks, connect hooks, then one session per connection.

Rejections are sent *after* the handshake is accepted, as a close frame with
a documented code and reason (docs/protocol.md), so the browser's worker
sees 4001 "do not reconnect" instead of an HTTP 403 it keeps retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from quart import Quart, websocket
from quart.asgi import ASGIWebsocketConnection

from .. import signals
from ..session.registry import binding, open_session
from ..types import Identity
from ..wire.guards import host_problem, origin_problem
from ..wire.protocol import CloseCode
from . import dash_internals

if TYPE_CHECKING:
    from .live import LiveApp

log = logging.getLogger("quartdash")


# Messages Quart may hold for a handler that has not read them yet. Quart's
# own queue is unbounded: a client sending faster than the app reads (or
# while a closing session no longer reads) grew server memory without limit.
# Bounded, the receiver waits, the server stops reading the socket, and TCP
# slows the client down (docs/reliability.md).
RECEIVE_QUEUE = 4


class ReceiveQueue:
    """The bounded FIFO between Quart's receiver task and the handler.

    ``asyncio.Queue(maxsize)``'s ``put``/``get`` semantics (FIFO, a full queue
    makes ``put`` wait, cancellation never loses or duplicates an item), for
    the one use Quart makes of it, without its cost: an ``asyncio.Queue`` is
    four 760-byte deques (its items, getters, putters and the ``join()``
    Event), ~3.3 KB on every connection, idle or not. Here: lists, waiter
    lists made on first wait. No ``task_done``/``join`` (Quart uses neither).
    """

    __slots__ = ("_getters", "_items", "_putters", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None
        self._putters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put_nowait(self, item: Any) -> None:
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)
        _wake_next(self._getters)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.pop(0)
        _wake_next(self._putters)
        return item

    async def put(self, item: Any) -> None:
        while self.full():
            if self._putters is None:
                self._putters = []
            waiter = _waiter(self._putters)
            try:
                await waiter
            except BaseException:
                _give_up(self._putters, waiter, not self.full())
                raise
        self.put_nowait(item)

    async def get(self) -> Any:
        # Inline rather than a shared helper coroutine: an idle connection
        # sits here, and every frame of the stack is kept meanwhile.
        while not self._items:
            if self._getters is None:
                self._getters = []
            waiter = _waiter(self._getters)
            try:
                await waiter
            except BaseException:
                _give_up(self._getters, waiter, bool(self._items))
                raise
        return self.get_nowait()


def _waiter(waiters: list[asyncio.Future[None]]) -> asyncio.Future[None]:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    return waiter


def _give_up(waiters: list[asyncio.Future[None]], waiter: asyncio.Future[None],
             still_ready: bool) -> None:
    """A waiter leaves the line (cancelled); if it had been woken, the next
    one gets its turn (as asyncio.Queue does)."""
    waiter.cancel()  # in case it is not done yet
    with contextlib.suppress(ValueError):  # already taken off by a wake
        waiters.remove(waiter)
    if still_ready and not waiter.cancelled():
        _wake_next(waiters)


def _wake_next(waiters: list[asyncio.Future[None]] | None) -> None:
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            break


class BoundedWebsocketConnection(ASGIWebsocketConnection):
    """Quart's ASGI WebSocket handler with a bounded (and light) receive queue."""

    def __init__(self, app: Quart, scope: Any) -> None:
        super().__init__(app, scope)
        self.queue = cast(asyncio.Queue, ReceiveQueue(RECEIVE_QUEUE))


def bound_receive_queue(app: Quart) -> None:
    """Make ``app`` hold at most :data:`RECEIVE_QUEUE` unread messages per WebSocket.

    Uses Quart's public ``asgi_websocket_class`` setting; an app that set its
    own class keeps it (and is warned that its queue may be unbounded).
    """
    current = app.asgi_websocket_class
    if issubclass(current, BoundedWebsocketConnection):
        return
    if current is not ASGIWebsocketConnection:
        log.warning("%r has its own asgi_websocket_class %r: quartdash cannot bound its "
                    "receive queue (docs/reliability.md)", app, current)
        return
    app.asgi_websocket_class = BoundedWebsocketConnection


class QuartTransport:
    """Quart's websocket context as a session's transport (:class:`~quartdash.types.Transport`).

    Sends go straight to the ASGI ``send`` callable when Quart exposes it:
    ``Websocket.send`` first yields to the loop (``sleep(0)``) and fires the
    ``websocket_sent`` signal, a cost paid on every frame of a push-heavy
    connection. The session's sender is its own task, so the yield buys
    nothing here.
    """

    __slots__ = ("_asgi_send", "_ws")

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        send = getattr(ws, "_send", None)
        # Quart stores partial(ASGIWebsocketConnection.send_data, asgi_send).
        args: tuple[Any, ...] = getattr(send, "args", ())
        self._asgi_send = args[0] if len(args) == 1 and callable(args[0]) else None

    def receive(self) -> Coroutine[Any, Any, str | bytes]:
        # Quart's own coroutine, not one wrapped in ours: an idle session
        # waits here, and each frame of that stack is kept meanwhile.
        return cast(Coroutine[Any, Any, str | bytes], self._ws.receive())

    async def send(self, text: str) -> None:
        if self._asgi_send is not None:
            await self._asgi_send({"type": "websocket.send", "bytes": None, "text": text})
        else:
            await self._ws.send(text)

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


def binding_of(ws: Any, identity: Identity | None = None) -> str:
    """What a connection must share with a session to resume it
    (:func:`quartdash.session.registry.binding`): the handshake's origin and
    cookies, and the identity the connect hooks gave it."""
    return binding(ws.headers.get("origin", ""), ws.headers.get("cookie", ""), identity)


def connection_info(ws: Any) -> dict[str, Any]:
    """What ``dash.ctx`` offers about the request, taken from the handshake."""
    return {
        "cookies": dict(ws.cookies),
        "headers": dict(ws.headers),
        "args": ws.args,
        "path": ws.full_path,
        "remote": ws.remote_addr,
        "origin": ws.headers.get("origin"),
        "websocket": ws,
    }


def make_websocket_view(live: LiveApp) -> Callable[[], Awaitable[None]]:
    async def dash_ws_callback() -> None:
        dash_internals.set_current_app(live.dash)
        dash_internals.setup_server(live.dash)
        ws = cast(Any, websocket)._get_current_object()
        config = live.config
        problem = host_problem(ws.headers.get("host"), config.allowed_hosts)
        if problem is not None:
            await reject(live, ws, CloseCode.REJECTED, problem, "host")
            return
        problem = origin_problem(ws.headers.get("origin"), ws.headers.get("host"),
                                 config.allowed_origins, config.allow_missing_origin)
        if problem is not None:
            await reject(live, ws, CloseCode.REJECTED, problem, "origin")
            return
        # Every new socket, a resume included: the identity is checked afresh.
        verdict, identity = await live.run_connect_hooks(ws)
        if verdict is not None:
            await reject(live, ws, verdict[0], verdict[1], "hook")
            return
        await ws.accept()
        live.connect_remote()
        # Awaited here, not inside open_session(): one frame less under
        # every connection for its whole life.
        serving = await open_session(live, live.registry, QuartTransport(ws),
                                     connection_info(ws), binding_of(ws, identity),
                                     identity=identity)
        if serving is not None:
            await serving

    return dash_ws_callback


async def reject(live: LiveApp, ws: Any, code: int, reason: str, why: str) -> None:
    signals.emit(signals.connection_rejected, live, reason=why, code=code, detail=reason,
                 session=None)
    await ws.accept()
    await ws.close(code, reason)
