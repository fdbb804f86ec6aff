"""The two transports the test client talks through, and their sockets.

* in-process: Quart's test client; the app runs on the test's event loop,
  no socket (:class:`_InProcessTransport`);
* network: a real server, through the ``websockets`` client and urllib
  (:class:`_NetworkTransport`).

Both open a WebSocket (a :class:`_Socket`, which raises :class:`_Closed` once
the connection is gone) and make HTTP requests; :func:`_transport_for` picks
one for what a :class:`~quartdash.testing.DashClient` is pointed at.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from .errors import HandshakeRejected, WaitTimeout
from .records import HttpResponse


class _Closed(Exception):
    """The WebSocket is gone: the close code and reason, as far as they are known."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class _Socket(Protocol):
    """One open WebSocket of a transport; ``send`` and ``recv`` raise :class:`_Closed`."""

    async def send(self, text: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int, reason: str, timeout: float) -> None: ...
    async def drop(self, timeout: float) -> None:
        """Lose the connection without a close frame (a network drop)."""
        ...


class _Transport(Protocol):
    """How a client reaches its server: WebSockets and HTTP requests."""

    default_origin: str

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket: ...
    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse: ...


class _InProcessTransport:
    """Quart's test client: the app runs on this event loop, no socket."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.test_client = app.test_client()
        self.test_client.websocket_connection_class = _recording_connection_class()
        host = app.config.get("SERVER_NAME") or "localhost"
        self.default_origin = f"http://{host}"

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket:
        # ASGI 2.3, as hypercorn declares for WebSockets: Quart sends close
        # reasons only from 2.3 on (its test client defaults to 2.1).
        connection = self.test_client.websocket(
            path, headers=dict(headers), scope_base={"asgi": {"spec_version": "2.3"}})
        await connection.__aenter__()
        socket = _InProcessSocket(connection)
        await socket.wait_accepted(timeout)
        return socket

    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse:
        async with asyncio.timeout(timeout):
            response = await self.test_client.open(path, method=method, data=body,
                                                   headers=dict(headers))
            data = await response.get_data()
        return HttpResponse(response.status_code,
                            {k.lower(): v for k, v in response.headers.items()}, data)


_connection_class: type | None = None


def _recording_connection_class() -> type:
    """Quart's test websocket connection, also keeping the close reason and the accept."""
    global _connection_class
    if _connection_class is not None:
        return _connection_class
    from quart.testing.connections import TestWebsocketConnection

    class RecordingWebsocketConnection(TestWebsocketConnection):
        def __init__(self, app: Any, scope: Any) -> None:
            super().__init__(app, scope)
            self.close_reason = ""
            self.settled = asyncio.Event()  # accepted, closed or answered with HTTP

        async def _asgi_send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "websocket.close":
                self.close_reason = message.get("reason") or ""
            if kind in ("websocket.accept", "websocket.close") or (
                    kind == "websocket.http.response.body" and not message.get("more_body")):
                self.settled.set()
            await super()._asgi_send(message)

    _connection_class = RecordingWebsocketConnection
    return _connection_class


class _InProcessSocket:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def wait_accepted(self, timeout: float) -> None:
        from quart.testing.connections import WebsocketResponseError

        try:
            async with asyncio.timeout(timeout):
                await self.connection.settled.wait()
        except TimeoutError:
            await self._abandon(timeout)
            raise WaitTimeout(f"the WebSocket handshake got no answer within {timeout} s") \
                from None
        if not self.connection.accepted:
            try:
                await self.connection.receive()
            except WebsocketResponseError as error:
                response = error.response
                body = (await response.get_data(as_text=False)).decode("utf-8", "replace")
                raise HandshakeRejected(response.status_code, body) from None

    async def send(self, text: str) -> None:
        await self.connection.send(text)

    async def recv(self) -> str | bytes:
        from quart.testing.connections import WebsocketDisconnectError, WebsocketResponseError

        try:
            return await self.connection.receive()
        except WebsocketDisconnectError as error:
            code = error.args[0] if error.args else None
            raise _Closed(code, self.connection.close_reason) from None
        except WebsocketResponseError as error:
            raise _Closed(None, f"HTTP {error.response.status_code}") from None

    async def close(self, code: int, reason: str, timeout: float) -> None:
        await self._abandon(timeout)

    async def drop(self, timeout: float) -> None:
        # In-process there is no TCP: the app sees the same disconnect.
        await self._abandon(timeout)

    async def _abandon(self, timeout: float) -> None:
        # websocket.disconnect ends the handler (its callbacks are cancelled);
        # waiting for the app task bounds the session's shutdown.
        try:
            async with asyncio.timeout(timeout):
                await self.connection.__aexit__(None, None, None)
        except TimeoutError:
            raise WaitTimeout(f"the app's WebSocket handler did not end within {timeout} s "
                              "of the disconnect") from None


class _NetworkTransport:
    """A real server: the ``websockets`` client and urllib, both on 127.0.0.1 & co."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"expected an http(s):// URL, got {base_url!r}")
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.default_origin = f"{parts.scheme}://{parts.netloc}"
        # Loopback test servers: never go through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    async def open_websocket(self, path: str, headers: Mapping[str, str],
                             timeout: float) -> _Socket:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        headers = dict(headers)
        origin = headers.pop("Origin", None)
        scheme = "wss" if self.scheme == "https" else "ws"
        try:
            ws = await connect(f"{scheme}://{self.netloc}{path}", origin=origin,  # type: ignore[arg-type]
                               additional_headers=headers, open_timeout=timeout, proxy=None,
                               max_size=None, ping_interval=None, compression=None)
        except InvalidStatus as error:
            response = error.response
            raise HandshakeRejected(response.status_code,
                                    response.body.decode("utf-8", "replace")) from None
        except TimeoutError:
            raise WaitTimeout(f"the WebSocket handshake to {path} took more than {timeout} s") \
                from None
        return _NetworkSocket(ws)

    async def http(self, method: str, path: str, body: bytes | None,
                   headers: Mapping[str, str], timeout: float) -> HttpResponse:
        url = f"{self.scheme}://{self.netloc}{path}"
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))

        def fetch() -> HttpResponse:
            try:
                with self.opener.open(request, timeout=timeout) as response:
                    return HttpResponse(response.status,
                                        {k.lower(): v for k, v in response.headers.items()},
                                        response.read())
            except urllib.error.HTTPError as error:
                with error:
                    return HttpResponse(error.code,
                                        {k.lower(): v for k, v in error.headers.items()},
                                        error.read())

        try:
            async with asyncio.timeout(timeout + 1):
                return await asyncio.to_thread(fetch)
        except TimeoutError:
            raise WaitTimeout(f"{method} {url} got no answer within {timeout} s") from None


class _NetworkSocket:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            await self.ws.send(text)
        except WsClosed as closed:
            raise _Closed(*_close_info(closed)) from None

    async def recv(self) -> str | bytes:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            return await self.ws.recv()
        except WsClosed as closed:
            raise _Closed(*_close_info(closed)) from None

    async def drop(self, timeout: float) -> None:
        # A TCP reset: no close frame, no FIN; the server sees the socket die.
        import socket
        import struct

        raw = self.ws.transport.get_extra_info("socket")
        if raw is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.ws.transport.abort()

    async def close(self, code: int, reason: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self.ws.close(code, reason)
        except TimeoutError:
            raise WaitTimeout(f"the server did not answer our close frame within {timeout} s") \
                from None


def _close_info(closed: Any) -> tuple[int | None, str]:
    frame = closed.rcvd
    if frame is None:
        return 1006, "no close frame received"
    return int(frame.code), str(frame.reason)


def _transport_for(target: Any, prefix: str | None, server: Any) -> tuple[_Transport, str]:
    """The transport for a DashClient's ``target``, and the app's path prefix."""
    def slashed(path: str) -> str:
        return "/" + path.strip("/") + "/" if path.strip("/") else "/"

    if isinstance(target, str):
        if prefix is not None:
            raise TypeError("with a URL, put the prefix in the URL")
        parts = urllib.parse.urlsplit(target)
        return _NetworkTransport(target), slashed(parts.path)

    from quart import Quart

    from ..blueprint import DashBlueprint

    if isinstance(target, DashBlueprint):
        if not isinstance(server, Quart):
            raise TypeError("DashClient(blueprint) needs server=<the Quart app it is "
                            "registered on>")
        routes = target.dash.config.routes_pathname_prefix
        mount = (target.url_prefix or "").rstrip("/")
        return _InProcessTransport(server), prefix or slashed(mount + routes)
    if isinstance(target, Quart):
        return _InProcessTransport(target), slashed(prefix or "/")
    quart_app = getattr(target, "server", None)
    config = getattr(target, "config", None)
    if isinstance(quart_app, Quart) and config is not None:
        return _InProcessTransport(quart_app), prefix or config.routes_pathname_prefix
    raise TypeError(f"DashClient cannot drive {target!r}: pass a quartdash.Dash, a "
                    "DashBlueprint (with server=), a Quart app or an http:// URL")
