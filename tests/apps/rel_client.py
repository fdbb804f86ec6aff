"""A small protocol-level client for the reliability and security tests.

Speaks docs/protocol.md the way quartdash's SharedWorker does, on a real
``websockets`` connection (or a raw socket when a test needs to misbehave
below the WebSocket layer). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import http_get

WS_PATH = "/_dash-ws-callback"


def origin_of(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


async def open_ws(server: Any, *, origin: str | None = "", path: str = WS_PATH,
                  headers: dict[str, str] | None = None, **kwargs: Any) -> ClientConnection:
    """A WebSocket to the app; ``origin=""`` sends the server's own origin, None none."""
    if origin == "":
        origin = origin_of(server)
    headers = dict(headers or {})
    if origin is not None:
        headers["Origin"] = origin
    return await connect(server.ws_url(path), additional_headers=headers, open_timeout=5,
                         close_timeout=2, max_size=None, **kwargs)


def request(output: str, inputs: list[dict[str, Any]] | None = None,
            state: list[dict[str, Any]] | None = None, *, renderer: str = "r1",
            request_id: str = "q1") -> dict[str, Any]:
    """A ``callback_request`` as the renderer sends it."""
    component, _, prop = output.rpartition(".")
    inputs = inputs or []
    return {
        "type": "callback_request",
        "rendererId": renderer,
        "requestId": request_id,
        "payload": {
            "output": output,
            "outputs": {"id": component, "property": prop},
            "inputs": inputs,
            "state": state or [],
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs[:1]],
        },
    }


def click(button: str, output: str, *, n: int = 1, state: list[dict[str, Any]] | None = None,
          renderer: str = "r1", request_id: str = "q1") -> dict[str, Any]:
    """The request a click on ``button`` sends for the callback writing ``output``."""
    return request(output, [{"id": button, "property": "n_clicks", "value": n}], state,
                   renderer=renderer, request_id=request_id)


def echo(renderer: str = "r1", request_id: str = "q1", n: int = 1) -> dict[str, Any]:
    return click("echo-btn", "echo-out.children", n=n,
                 state=[{"id": "echo-in", "property": "value", "value": "x"}],
                 renderer=renderer, request_id=request_id)


def joined(renderer: str) -> dict[str, Any]:
    return {"type": "renderer_joined", "rendererId": renderer}


async def send(ws: ClientConnection, message: Any) -> None:
    await ws.send(message if isinstance(message, (str, bytes)) else json.dumps(message))


def split(frame: str | bytes) -> list[dict[str, Any]]:
    """The messages of one server frame (a batch is a JSON array)."""
    decoded = json.loads(frame)
    return decoded if isinstance(decoded, list) else [decoded]


# Messages of a batch frame after the one recv_until returned: the next call
# sees them first, so nothing in a batch is skipped.
_unread: weakref.WeakKeyDictionary[ClientConnection, deque[dict[str, Any]]] = (
    weakref.WeakKeyDictionary())


async def recv_until(ws: ClientConnection, predicate: Callable[[dict[str, Any]], bool],
                     timeout: float = 5.0) -> dict[str, Any]:
    """Read messages until one matches ``predicate``; return it (others are dropped)."""
    unread = _unread.setdefault(ws, deque())
    async with asyncio.timeout(timeout):
        while True:
            while unread:
                message = unread.popleft()
                if predicate(message):
                    return message
            unread.extend(split(await ws.recv()))


def of_type(kind: str, request_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def match(message: dict[str, Any]) -> bool:
        return message.get("type") == kind and (
            request_id is None or message.get("requestId") == request_id)
    return match


async def wait_closed(ws: ClientConnection, timeout: float = 5.0) -> int | None:
    """Drain until the server closes; return the close code it sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


async def expect_alive(ws: ClientConnection, renderer: str = "alive", request_id: str = "ping"
                       ) -> None:
    """Prove the connection still serves: an echo callback round trip."""
    await send(ws, echo(renderer, request_id))
    reply = await recv_until(ws, of_type("callback_response", request_id))
    assert reply["payload"]["status"] == "ok", reply


class Bystander:
    """Another user's connection: must notice nothing of what a test does to others."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.checks = 0

    @classmethod
    async def join(cls, server: Any) -> Bystander:
        ws = await open_ws(server)
        await send(ws, joined("bystander"))
        guard = cls(ws)
        await guard.check()
        return guard

    async def check(self) -> None:
        # Its persistent callback still pushes, and it still gets answers.
        await recv_until(self.ws, lambda m: m.get("type") == "set_props"
                         and m["rendererId"] == "bystander"
                         and m["payload"]["componentId"] == "tick")
        self.checks += 1
        await expect_alive(self.ws, "bystander", f"bystander-{self.checks}")

    async def leave(self) -> None:
        await self.check()
        await self.ws.close()


# --- the server's own view ------------------------------------------------------


def stats(server: Any) -> dict[str, Any]:
    response = http_get(server.http_url("/_rel/stats"), timeout=5)
    assert response.status == 200, response
    return json.loads(response.body)


def http_post(server: Any, path: str) -> dict[str, Any]:
    req = urllib.request.Request(server.http_url(path), data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


async def astats(server: Any) -> dict[str, Any]:
    return await asyncio.to_thread(stats, server)


async def wait_stats(server: Any, predicate: Callable[[dict[str, Any]], bool],
                     timeout: float = 10.0, what: str = "server state") -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = await astats(server)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {current}")
        await asyncio.sleep(0.05)


def persistent_id(server: Any) -> str:
    deps = json.loads(http_get(server.http_url("/_dash-dependencies"), timeout=5).body)
    (cb,) = [d for d in deps if d.get("persistent")]
    return str(cb["output"])


# --- below the WebSocket layer -----------------------------------------------------


def reset(ws: ClientConnection) -> None:
    """Drop the connection with a TCP RST: no close frame, no FIN."""
    sock: socket.socket = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


class RawWebSocket:
    """A hand-made client: handshake, masked text frames, and nothing else.

    It never reads unless asked, so it can play a client that stopped reading
    (``rcvbuf`` shrinks its receive buffer so the server notices sooner).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def connect(cls, server: Any, *, origin: str | None = "", rcvbuf: int | None = None,
                path: str = WS_PATH, host: str | None = None) -> RawWebSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{server.port}'}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin or origin_of(server)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: do not swallow the first frame
            if not chunk:
                raise ConnectionError(f"handshake failed: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head!r}")
        return cls(sock)

    def send_text(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        size = len(data)
        if size < 126:
            header = struct.pack("!BB", 0x81, 0x80 | size)
        elif size < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
        # XOR with the repeated mask as one big integer: fast for large frames.
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        self.sock.sendall(header + mask + masked)

    def send_json(self, message: Any) -> None:
        self.send_text(json.dumps(message))

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def read_close_code(self, timeout: float = 10.0) -> int | None:
        """Read (and drop) frames until a close frame; its code, or None on EOF/reset."""
        return self.read_close(timeout)[0]

    def read_close(self, timeout: float = 10.0) -> tuple[int | None, str]:
        """Read (and drop) frames until a close frame: ``(code, reason)``;
        ``(None, "")`` on EOF or reset."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        buffer = b""
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                return None, ""
            if not chunk:
                return None, ""
            buffer += chunk
            while len(buffer) >= 2:
                opcode, size = buffer[0] & 0x0F, buffer[1] & 0x7F
                offset = 2
                if size == 126:
                    if len(buffer) < 4:
                        break
                    size, offset = struct.unpack("!H", buffer[2:4])[0], 4
                elif size == 127:
                    if len(buffer) < 10:
                        break
                    size, offset = struct.unpack("!Q", buffer[2:10])[0], 10
                if len(buffer) < offset + size:
                    break
                payload = buffer[offset:offset + size]
                buffer = buffer[offset + size:]
                if opcode == 0x8:
                    if len(payload) < 2:
                        return None, ""
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
        return None, ""

    def close(self) -> None:
        self.sock.close()


async def connect_url(url: str, **kwargs: Any) -> ClientConnection:
    """A plain WebSocket to any URL (no Origin header), bounded like open_ws."""
    return await connect(url, open_timeout=5, close_timeout=2, max_size=None, **kwargs)
