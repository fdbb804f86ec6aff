"""Shared test helpers; the fixtures that use them live in tests/conftest.py.

- net: ``free_port``, ``wait_until``, ``http_get`` / ``http_request`` (stdlib, blocking).
- server: ``start_server`` / ``ServerProcess``: hypercorn in a subprocess.
- browser: Chromium launch options, ``open_page``, ``assert_no_console_errors``,
  ``save_screenshot``.
- redis_server: ``RedisServer``: a throw-away redis-server.
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
from .net import (
    LOOPBACK,
    HttpResponse,
    free_port,
    http_get,
    http_request,
    port_accepts,
    wait_until,
)
from .redis_server import RedisServer
from .server import (
    REPO_ROOT,
    ServerProcess,
    ServerStartError,
    ServerStopTimeout,
    server_env,
    start_server,
)

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "LOOPBACK",
    "REPO_ROOT",
    "HttpResponse",
    "RedisServer",
    "ServerProcess",
    "ServerStartError",
    "ServerStopTimeout",
    "assert_no_console_errors",
    "free_port",
    "http_get",
    "http_request",
    "launch_chromium",
    "new_context",
    "open_page",
    "port_accepts",
    "save_screenshot",
    "server_env",
    "start_server",
    "wait_until",
    "watch_errors",
]
