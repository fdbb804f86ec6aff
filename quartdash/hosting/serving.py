"""Serving: the development server behind ``app.run()``, and a clean shutdown.

On SIGTERM/SIGINT every session is closed with 1001 ("going away") and its
persistent callbacks see ``is_shutdown`` and clean up *before* hypercorn's
graceful timeout cancels the connections.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from typing import Any

from quart import Quart

from ..config import WebSocketConfig
from .live import close_all_sessions, live_apps
from .websocket_route import bound_receive_queue

__all__ = ["install_shutdown_hooks", "run", "websocket_message_limit"]

log = logging.getLogger("quartdash")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_shutdown_hooks(app: Quart) -> None:
    """Close sessions with 1001 when the server is told to stop.

    Under ``hypercorn module:asgi`` hypercorn owns the signal handlers; this
    chains in front of them (once per serving loop), so sessions are closed
    first and hypercorn then shuts down as usual.
    """
    if app.config.get("_QUARTDASH_SHUTDOWN_HOOKS"):
        return
    app.config["_QUARTDASH_SHUTDOWN_HOOKS"] = True
    bound_receive_queue(app)

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
                task = loop.create_task(close_all_sessions())
                _keep.add(task)
                task.add_done_callback(_keep.discard)
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

    @app.after_serving
    async def close_remaining() -> None:
        while watchers:
            watchers.pop().cancel()
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
    await close_all_sessions()


_keep: set[asyncio.Task[None]] = set()
_chained: set[tuple[int, int]] = set()


def websocket_message_limit() -> int:
    """The largest ``websocket_max_message_size`` of the apps in this process:
    the limit to give the server (hypercorn's default is 16 MiB)."""
    sizes = [live.config.max_message_size for live in live_apps]
    return max(sizes, default=WebSocketConfig().max_message_size)


def run(app: Quart, *, host: str = "127.0.0.1", port: int = 8050, debug: bool = False,
        **config: Any) -> None:
    """Serve ``app`` with hypercorn until SIGINT/SIGTERM (the dev server)."""
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
    app.debug = debug
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(f" * quartdash serving on http://{shown}:{port}/ (debug={debug}; CTRL+C to quit)",
          flush=True)

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
