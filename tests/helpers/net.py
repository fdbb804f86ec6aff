"""Loopback networking helpers: free ports, bounded waits, a stdlib HTTP GET."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

LOOPBACK = "127.0.0.1"

T = TypeVar("T")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> None:
    """Poll ``predicate`` until it returns true; raise ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str, default: str = "") -> str:
        """A header's value, whatever the case of its name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), default)


def http_get(
    url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> HttpResponse:
    """GET ``url`` with the stdlib; 4xx/5xx are returned, not raised. Blocking:
    from async code call it as ``await asyncio.to_thread(http_get, url)``."""
    return http_request("GET", url, timeout=timeout, headers=headers)


def http_request(
    method: str, url: str, body: bytes | None = None, *, timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """Any method with the stdlib; 4xx/5xx are returned, not raised (blocking)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResponse(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return HttpResponse(error.code, dict(error.headers.items()), error.read())


def _with_hold(url: str, hold: float, pid: int | None = None) -> str:
    held = url + ("&" if "?" in url else "?") + f"hold={hold}"
    return held if pid is None else f"{held}&pid={pid}"


@asynccontextmanager
async def one_worker_held(url: str, hold: float = 0.3) -> AsyncIterator[asyncio.Task[HttpResponse]]:
    """While inside, the worker that took a ``?hold=`` GET of ``url`` (an app
    using tests/apps/_workers.py) accepts nothing: a connection opened now
    lands on another worker. Yields the held request (its answer names the
    worker held); leaving waits for it."""
    held = asyncio.create_task(asyncio.to_thread(http_get, _with_hold(url, hold), timeout=5))
    await asyncio.sleep(hold / 4)  # the request reached its worker, which is now blocked
    try:
        yield held
    finally:
        response = await held
        assert response.status == 200, (url, response.status, response.body[:300])


@asynccontextmanager
async def worker_held(url: str, pid: int, hold: float = 1.5) -> AsyncIterator[None]:
    """While inside (for about ``hold`` - 0.3 s), worker ``pid`` of two (an app
    using tests/apps/_workers.py) accepts nothing, so a connection opened now
    lands on the other one. Two ``?hold=&pid=`` GETs: the first blocks P, or
    blocks the other worker briefly, so the second can only land on P."""
    url = _with_hold(url, hold, pid)
    first = asyncio.create_task(asyncio.to_thread(http_get, url, timeout=5))
    await asyncio.sleep(0.05)  # the first reached its worker, which is now blocked
    second = asyncio.create_task(asyncio.to_thread(http_get, url, timeout=5))
    await asyncio.sleep(0.25)  # the other worker's brief hold is over
    try:
        yield
    finally:
        answers = [await first, await second]
        pids = {json.loads(a.body).get("pid") for a in answers if a.status == 200}
        assert pid in pids, (pid, [(a.status, a.body[:300]) for a in answers])


async def connect_placed(connect: Callable[[], Awaitable[T]], url: str, *,
                         elsewhere: bool) -> T:
    """Await ``connect()`` (which opens a connection); with ``elsewhere``, while
    the worker a request to ``url`` would land on is held, so the connection
    lands on another (``one_worker_held``)."""
    if not elsewhere:
        return await connect()
    async with one_worker_held(url):
        return await connect()


async def from_every_worker(url: str, *, workers: int, key: str,
                            tries: int = 10, hold: float = 0.2) -> dict[int, Any]:
    """GET ``url`` (a JSON endpoint of an app using tests/apps/_workers.py) until
    each of ``workers`` worker processes answered; keyed by the answer's ``key``.

    Each round sends one request with ``?hold=`` (its worker blocks its loop),
    then, while it is blocked, another that only a different worker can accept.
    """
    seen: dict[int, Any] = {}
    for _ in range(tries):
        async with one_worker_held(url, hold) as held:
            second = await asyncio.to_thread(http_get, url, timeout=5)
        for response in (held.result(), second):
            assert response.status == 200, (url, response.status, response.body[:300])
            answer = json.loads(response.body)
            seen[answer[key]] = answer
        if len(seen) == workers:
            return seen
    raise AssertionError(f"only {sorted(seen)} of {workers} workers answered {url}")
