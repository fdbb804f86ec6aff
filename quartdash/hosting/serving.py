"""Serving: the development server behind ``app.run()``, and a clean shutdown.

On SIGTERM/SIGINT every session is closed with 1001 ("going away") and its
persistent callbacks see ``is_shutdown`` and clean up *before* the server
cancels the connections: under ``hypercorn`` (the default), ``uvicorn`` and
``granian`` alike. :mod:`quartdash.hosting.servers` tells, per server, when it
closes the open WebSockets and how quartdash gets in first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from quart import Quart

from ..config import WebSocketConfig
from .live import close_all_sessions, live_apps
from .servers import (
    DEFAULT_SERVER,
    SIGNALS,
    chain_uvicorn_signals,
    hook_granian_signals,
    require,
)
from .websocket_route import bound_receive_queue

__all__ = ["begin_shutdown", "install_shutdown_hooks", "run", "shutdown_then",
           "websocket_message_limit"]

log = logging.getLogger("quartdash")

_SIGNALS = SIGNALS

# How long the server's own shutdown waits for every session's close frame
# to be out (a session gives its close frame 1 s to stop its sender and 2 s
# to be written).
HAND_OVER_TIMEOUT = 3.5


def begin_shutdown() -> asyncio.Task[None]:
    """Start closing every session with 1001, once: a shutdown already under
    way on this loop is returned, not started again."""
    loop = asyncio.get_running_loop()
    task = _closing.get(id(loop))
    if task is None or task.done() or task.get_loop() is not loop:
        task = loop.create_task(close_all_sessions(), name="quartdash-shutdown")
        _closing[id(loop)] = task
    return task


async def close_frames_out(timeout: float = HAND_OVER_TIMEOUT) -> None:
    """Wait (at most ``timeout`` s) until every closing session has written
    its close frame, or ended."""
    sessions = [session for live in list(live_apps) for session in list(live.sessions)]
    waits = [asyncio.ensure_future(session.close_frame_sent()) for session in sessions]
    if not waits:
        return
    _, pending = await asyncio.wait(waits, timeout=timeout)
    for wait in pending:
        wait.cancel()
    if pending:
        log.warning("%d session(s) had not sent their close frame after %.1f s",
                    len(pending), timeout)


async def shutdown_then(hand_over: Callable[[], None]) -> None:
    """Close every session (1001), then, once the close frames are out, let
    the server stop (``hand_over()``). The callbacks' grace runs on; the app's
    lifespan shutdown waits for it."""
    begin_shutdown()
    try:
        await close_frames_out()
    finally:
        hand_over()


def _on_server_signal(hand_over: Callable[[], None]) -> None:
    """A stop signal for uvicorn or granian, on the serving loop: close the
    sessions first. A second signal while waiting hands over at once."""
    loop = asyncio.get_running_loop()
    pending = _handing_over.get(id(loop))
    if pending is not None and pending.get_loop() is loop and not pending.done():
        hand_over()
        return
    task = loop.create_task(shutdown_then(hand_over), name="quartdash-hand-over")
    _handing_over[id(loop)] = task


def install_shutdown_hooks(app: Quart) -> None:
    """Close sessions with 1001 when the server is told to stop.

    Under ``hypercorn module:asgi`` hypercorn owns the signal handlers; this
    chains in front of them (once per serving loop), so sessions are closed
    first and hypercorn then shuts down as usual. Under ``uvicorn`` and
    ``granian`` the server's handler runs once every session's close frame
    is out (:mod:`quartdash.hosting.servers`), and the lifespan shutdown waits for
    the callbacks' grace.
    """
    if app.config.get("_QUARTDASH_SHUTDOWN_HOOKS"):
        return
    app.config["_QUARTDASH_SHUTDOWN_HOOKS"] = True
    bound_receive_queue(app)
    # granian sets its worker's signal handlers up after importing the app.
    hook_granian_signals(_on_server_signal)

    watchers: list[asyncio.Task[None]] = []  # the worker shutdown-event pollers

    @app.before_serving
    async def chain_signal_handlers() -> None:
        loop = asyncio.get_running_loop()
        # Private but stable: the handles asyncio keeps for add_signal_handler.
        handlers: dict[int, Any] = getattr(loop, "_signal_handlers", {})
        for sig in _SIGNALS:
            previous = handlers.get(sig)
            if previous is None or (id(loop), sig) in _chained:
                continue

            def chained(previous: Any = previous) -> None:
                begin_shutdown()
                previous._run()

            loop.add_signal_handler(sig, chained)
            _chained.add((id(loop), sig))
        # `hypercorn module:asgi` serves from worker processes (one by
        # default) that install no signal handlers: the parent catches
        # SIGTERM and sets an event the workers poll. Poll it too.
        event = _hypercorn_shutdown_event()
        if event is not None:
            watchers.append(loop.create_task(_close_when_set(event),
                                             name="quartdash-shutdown-watch"))
        # uvicorn installs its handlers with signal.signal, before the lifespan.
        chain_uvicorn_signals(_on_server_signal)

    @app.after_serving
    async def close_remaining() -> None:
        while watchers:
            watchers.pop().cancel()
        # uvicorn and granian get here while the sessions closed on the signal
        # may still be in their grace: let it run out (it is bounded).
        loop = asyncio.get_running_loop()
        closing = _closing.get(id(loop))
        if closing is not None and closing.get_loop() is loop and not closing.done():
            await asyncio.wait([closing])
        await close_all_sessions(grace=1.0)


def _hypercorn_shutdown_event() -> Any:
    """The shutdown event of the hypercorn worker process we run in, if any.

    Private but stable: hypercorn starts each worker as
    ``Process(target=asyncio_worker, kwargs={"shutdown_event": ...})``.
    """
    kwargs = getattr(multiprocessing.current_process(), "_kwargs", None)
    event = kwargs.get("shutdown_event") if isinstance(kwargs, dict) else None
    return event if callable(getattr(event, "is_set", None)) else None


async def _close_when_set(event: Any) -> None:
    while not event.is_set():  # noqa: ASYNC110 - a multiprocessing Event: nothing to await
        await asyncio.sleep(0.1)  # hypercorn's own worker polls at this rate
    await asyncio.shield(begin_shutdown())  # cancelling the watcher leaves it running


_chained: set[tuple[int, int]] = set()
_closing: dict[int, asyncio.Task[None]] = {}  # loop id -> the sessions' close
_handing_over: dict[int, asyncio.Task[None]] = {}  # loop id -> shutdown_then()


def websocket_message_limit() -> int:
    """The largest ``websocket_max_message_size`` of the apps in this process:
    the limit to give the server (hypercorn's default is 16 MiB)."""
    sizes = [live.config.max_message_size for live in live_apps]
    return max(sizes, default=WebSocketConfig().max_message_size)


def run(app: Quart, *, host: str = "127.0.0.1", port: int = 8050, debug: bool = False,
        server: str = DEFAULT_SERVER, **config: Any) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (the dev server).

    ``server``: ``"hypercorn"`` (the default), ``"uvicorn"`` (needs
    ``uvicorn[standard]``) or ``"granian"``; the last two come with the
    ``servers`` extra. ``config``: settings for that server (hypercorn
    ``Config`` attributes, ``uvicorn.Config`` or granian ``Server`` keyword
    arguments).
    """
    require(server)
    app.debug = debug
    if server == "uvicorn":
        serve, stop, force = _uvicorn_dev_server(app, host, port, debug, config)
    elif server == "granian":
        serve, stop, force = _granian_dev_server(app, host, port, debug, config)
    else:
        _run_hypercorn(app, host, port, debug, config)
        return
    _banner(server, host, port, debug)
    asyncio.run(_serve_until_signal(serve, stop, force))


def _banner(server: str, host: str, port: int, debug: bool) -> None:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    via = "" if server == DEFAULT_SERVER else f" with {server}"
    print(f" * quartdash serving on http://{shown}:{port}/{via} (debug={debug}; CTRL+C to quit)",
          flush=True)


def _run_hypercorn(app: Quart, host: str, port: int, debug: bool, config: dict[str, Any]
                   ) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    hyper = Config()
    hyper.bind = [f"{host}:{port}"]
    hyper.graceful_timeout = config.pop("graceful_timeout", 3.0)
    # hypercorn assembles a whole message before the app sees it: make its own
    # limit the apps' so an oversized message stops there (docs/security.md).
    hyper.websocket_max_message_size = websocket_message_limit()
    # Events hypercorn queues per connection for the app (10 by default): with
    # Quart's queue of 4 (websocket_route.RECEIVE_QUEUE) at most 8 unread messages.
    hyper.max_app_queue_size = 4
    hyper.accesslog = "-" if debug else None
    for key, value in config.items():
        setattr(hyper, key, value)
    _banner("hypercorn", host, port, debug)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, stop.set)

        async def shutdown_trigger() -> None:
            await stop.wait()
            await close_all_sessions()

        await serve(app, hyper, shutdown_trigger=shutdown_trigger)

    asyncio.run(main())


_DevServer = tuple[Callable[[], Awaitable[Any]], Callable[[], None], Callable[[], None]]


def _uvicorn_dev_server(app: Quart, host: str, port: int, debug: bool,
                        config: dict[str, Any]) -> _DevServer:
    import uvicorn

    class DevServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # app.run() handles SIGINT/SIGTERM itself (and exits 0)

    options: dict[str, Any] = {
        # uvicorn assembles a whole message before the app sees it: its limit,
        # the apps' (close 1009). The websockets implementation also stops
        # inflating a permessage-deflate frame at that size; wsproto's does
        # not (docs/security.md).
        "ws": "websockets-sansio",
        "ws_max_size": websocket_message_limit(),
        "log_level": "info" if debug else "warning",
        "access_log": debug,
    }
    options.update(config)
    server = DevServer(uvicorn.Config(app, host=host, port=port, **options))

    def force() -> None:
        server.force_exit = True

    return server.serve, lambda: setattr(server, "should_exit", True), force


def _granian_dev_server(app: Quart, host: str, port: int, debug: bool,
                        config: dict[str, Any]) -> _DevServer:
    # granian's embedded server runs on this process's loop: the app object
    # needs no import string. granian has no message-size setting (its
    # WebSocket library's own bounds apply: 16 MiB a frame, 64 MiB a message;
    # quartdash closes anything over the apps' limit with 1008).
    from granian.constants import Interfaces
    from granian.server.embed import Server

    options: dict[str, Any] = {"interface": Interfaces.ASGI, "log_access": debug}
    options.update(config)
    server = Server(app, address=host, port=port, **options)
    return server.serve, server.stop, lambda: None


async def _serve_until_signal(serve: Callable[[], Awaitable[Any]], stop: Callable[[], None],
                              force: Callable[[], None]) -> None:
    """Serve until SIGINT/SIGTERM; then close the sessions (1001) and stop the
    server (:func:`shutdown_then`). Another signal while stopping: ``force()``."""
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, signalled.set)
    serving = asyncio.ensure_future(serve())
    waiting = asyncio.ensure_future(signalled.wait())
    try:
        await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            await shutdown_then(stop)
            signalled.clear()
            waiting = asyncio.ensure_future(signalled.wait())
            await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
            if not serving.done():
                force()
        await serving
    finally:
        waiting.cancel()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
