"""The three ASGI servers quartdash runs on, and how each one is told to stop.

hypercorn (the default, a dependency), uvicorn (``uvicorn[standard]``) and
granian all serve ``app.asgi`` unchanged. Where they differ is shutdown.
Every one of them sends the ASGI ``lifespan.shutdown`` only *after* it has
closed or dropped the open WebSockets (read in their source, and measured
with hypercorn 0.18, uvicorn 0.55 and granian 2.8):

* hypercorn stops accepting, leaves the WebSockets open until they end or
  ``--graceful-timeout`` expires (then cancels them: the client sees 1006),
  then sends ``lifespan.shutdown`` (``hypercorn/asyncio/run.py``,
  ``worker_serve``).
* uvicorn stops accepting and at once closes every open WebSocket with
  **1012** ("service restart"), waits for the app's tasks (for ever, or
  ``--timeout-graceful-shutdown`` seconds, then cancels them), then sends
  ``lifespan.shutdown`` (``uvicorn/server.py``, ``Server.shutdown``;
  ``protocols/websockets/websockets_sansio_impl.py``, ``shutdown``). A
  single-process uvicorn re-raises the signal once it is done, so its exit
  status is that of the signal.
* granian drops every WebSocket with no close frame at all (the client sees
  **1006**, the app a disconnect with code 1005), sends
  ``lifespan.shutdown`` straight away and exits once it completes, whatever
  tasks still run (``granian/server/mp.py``, ``_spawn_asgi_lifespan_worker``;
  the Rust worker in ``src/serve.rs``).

``lifespan.shutdown`` is therefore too late to close sessions with 1001, so
quartdash starts closing them when the *signal* arrives and hands the
signal on to the server once every session's close frame is out
(:func:`quartdash.hosting.serving.shutdown_then`); the lifespan shutdown then waits
for the callbacks' grace. How the signal is caught, per server:

* hypercorn: see :mod:`quartdash.hosting.serving` (unchanged: its handlers are chained
  through the loop's table; its worker processes' shutdown event is polled).
* uvicorn installs ``Server.handle_exit`` with ``signal.signal`` (so that it
  can restore the previous handlers): quartdash puts its own handler in
  front with the same public call and calls ``handle_exit`` afterwards.
* granian registers its worker's handler with ``loop.add_signal_handler``
  from ``granian._signals.set_loop_signals``, and there is no public way to
  reach or chain it (under uvloop not even a private one). quartdash wraps
  that one private function, when granian is the server: it registers its
  own handler in front of granian's, which sets granian's stop signal
  afterwards. Should a granian release rename it, quartdash logs a warning
  and falls back to the lifespan shutdown: the browsers see 1006 instead of
  1001 and the callbacks get up to 3 s (the granian cases of
  tests/test_servers.py and tests/test_reliability_faults.py fail).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("quartdash")

SERVERS = ("hypercorn", "uvicorn", "granian")
DEFAULT_SERVER = "hypercorn"

# What each server needs to serve WebSockets, and the pip requirement for it.
_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "hypercorn": (("hypercorn",), "hypercorn"),
    # Plain uvicorn has no WebSocket implementation: [standard] brings websockets.
    "uvicorn": (("uvicorn", "websockets"), "uvicorn[standard]"),
    "granian": (("granian",), "granian"),
}

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ServerNotInstalled(RuntimeError):
    """The server asked for is not installed; the message names the extra to install."""


def require(server: str) -> None:
    """Check that ``server`` is one of :data:`SERVERS` and importable."""
    if server not in _NEEDS:
        raise ValueError(f"server must be one of {', '.join(map(repr, SERVERS))}, "
                         f"not {server!r}")
    modules, requirement = _NEEDS[server]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ServerNotInstalled(
                f"server={server!r} needs {requirement}, which is not installed "
                f"({error}): pip install 'quartdash[servers]'"
                f" (or pip install '{requirement}')") from None


# ------------------------------------------------------------------ uvicorn


def chain_uvicorn_signals(on_signal: Callable[[Callable[[], None]], None]) -> bool:
    """Put ``on_signal`` in front of uvicorn's ``Server.handle_exit``.

    Call from the serving loop (lifespan startup, which uvicorn runs inside
    its ``capture_signals``). ``on_signal(hand_over)`` runs on the loop;
    ``hand_over()`` calls uvicorn's handler. True when uvicorn was found.
    """
    server_class = _uvicorn_server_class()
    if server_class is None:
        return False
    loop = asyncio.get_running_loop()
    found = False
    for sig in SIGNALS:
        previous = signal.getsignal(sig)
        if not isinstance(getattr(previous, "__self__", None), server_class):
            continue  # not uvicorn's handler (or already chained)
        found = True

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            # A signal handler runs between two bytecodes of the main thread:
            # only schedule from here.
            loop.call_soon_threadsafe(on_signal, lambda: previous(signum, frame))

        signal.signal(sig, handler)
    return found


def _uvicorn_server_class() -> type | None:
    if "uvicorn" not in sys.modules:
        return None
    try:
        from uvicorn.server import Server
    except ImportError:
        return None
    return Server


# ------------------------------------------------------------------ granian


def hook_granian_signals(on_signal: Callable[[Callable[[], None]], None]) -> bool:
    """When granian is serving this process, put ``on_signal`` in front of
    its worker's signal handler (see the module's docstring).

    Call at import time of the app, before granian's worker sets its
    handlers up. True when the hook is in place.
    """
    if "granian" not in sys.modules:
        return False
    try:
        module = importlib.import_module("granian._signals")
    except ImportError:
        module = None
    original = getattr(module, "set_loop_signals", None)
    if original is None:
        log.warning("granian: no granian._signals.set_loop_signals in this version; "
                    "sessions are closed at the lifespan shutdown, after granian dropped "
                    "them (the browser sees 1006, not 1001)")
        return False
    if getattr(original, "quartdash_hook", False):
        return True

    def set_loop_signals(loop: asyncio.AbstractEventLoop) -> Any:
        stop = original(loop)  # granian's WorkerSignal: .set() stops the worker

        def handler() -> None:
            on_signal(stop.set)

        for sig in SIGNALS:
            loop.add_signal_handler(sig, handler)  # replaces granian's own
        return stop

    set_loop_signals.quartdash_hook = True  # type: ignore[attr-defined]
    set_loop_signals.__wrapped__ = original  # type: ignore[attr-defined]
    module.set_loop_signals = set_loop_signals  # type: ignore[union-attr]
    return True
