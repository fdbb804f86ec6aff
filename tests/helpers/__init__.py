"""Shared test helpers; the fixtures that use them live in tests/conftest.py.

- net: ``free_port``, ``wait_until``, ``http_get`` / ``http_request`` (stdlib, blocking),
  ``from_every_worker`` (a stats endpoint of each ``-w 2`` worker),
  ``one_worker_held`` (the next connection lands on another worker),
  ``connect_placed`` (a connection there, or wherever the kernel puts it),
  ``worker_held`` (one chosen worker of two accepts nothing for a while).
- server: ``start_server`` / ``ServerProcess``: hypercorn (or ``server="uvicorn"`` /
  ``"granian"``) in a subprocess; ``SERVERS``; ``server_command``.
- browser: Chromium launch options, ``open_page``, ``assert_no_console_errors``,
  ``save_screenshot``.
- redis_server: ``RedisServer``: a throw-away redis-server.
- demo: ``start_demo`` / ``DemoProcess``: the demo command, its printed URL,
  a bounded stop; ``open_session`` / ``close_code``: a raw WebSocket session.
"""

from .browser import (
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    assert_no_console_errors,
    launch_chromium,
    new_context,
    open_page,
    save_screenshot,
    watch_errors,
)
from .demo import DemoError, DemoProcess, close_code, first_push, open_session, start_demo
from .net import (
    LOOPBACK,
    HttpResponse,
    connect_placed,
    free_port,
    from_every_worker,
    http_get,
    http_request,
    one_worker_held,
    port_accepts,
    wait_until,
    worker_held,
)
from .redis_server import RedisServer
from .server import (
    REPO_ROOT,
    SERVERS,
    ServerProcess,
    ServerStartError,
    ServerStopTimeout,
    server_command,
    server_env,
    start_server,
)

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "LOOPBACK",
    "REPO_ROOT",
    "SERVERS",
    "DemoError",
    "DemoProcess",
    "HttpResponse",
    "RedisServer",
    "ServerProcess",
    "ServerStartError",
    "ServerStopTimeout",
    "assert_no_console_errors",
    "close_code",
    "connect_placed",
    "first_push",
    "free_port",
    "from_every_worker",
    "http_get",
    "http_request",
    "launch_chromium",
    "new_context",
    "one_worker_held",
    "open_page",
    "open_session",
    "port_accepts",
    "save_screenshot",
    "server_command",
    "server_env",
    "start_demo",
    "start_server",
    "wait_until",
    "watch_errors",
    "worker_held",
]
