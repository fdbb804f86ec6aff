"""The test client: one WebSocket connection to a hosted Dash app, and its HTTP routes.

:class:`DashClient` opens the connection (through a transport of
:mod:`~quartdash.testing.transports`), reads every frame into records,
hands each message to the renderer it names, and runs the bounded waits
that renderers and tests wait with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import DEFAULT_TIMEOUT, ConnectionClosed, WaitTimeout
from .ids import PropRef, Values
from .records import Frame, HttpCallbackResult, HttpResponse, Received
from .renderer import TestRenderer
from .specs import CallbackSpec, build_payload, resolve_callback
from .transports import _Closed, _Socket, _transport_for

__all__ = ["DashClient"]

T = TypeVar("T")

_DEFAULT: Any = object()  # "work it out" (e.g. the Origin header)


# Messages about the connection itself (resume), not for a tab.
_CONTROL = frozenset({"session", "resumed", "session_lost", "ack"})


class DashClient:
    """A protocol-level client for one hosted Dash app (see :mod:`quartdash.testing`).

    ``target`` is a :class:`quartdash.Dash`, a :class:`quartdash.DashBlueprint`
    (with ``server=`` the Quart app it is registered on), a Quart app (with
    ``prefix``, default ``"/"``), or an ``http://host:port/prefix/`` URL.

    ``origin`` is sent with the WebSocket handshake: by default the server's
    own (so the origin check passes); None sends none. ``headers`` go with
    the handshake and every HTTP request. ``timeout`` bounds connecting and
    every HTTP request.

    ``resumable=True`` plays quartdash's own worker: it says ``hello``,
    numbers its messages, acks the server's and applies each numbered one
    once; :meth:`drop` then loses the connection and :meth:`resume` brings
    the session back on a new one (docs/protocol.md).
    """

    def __init__(self, target: Any, prefix: str | None = None, *, server: Any = None,
                 origin: str | None = _DEFAULT, headers: Mapping[str, str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, resumable: bool = False) -> None:
        self.transport, self.prefix = _transport_for(target, prefix, server)
        self.origin = self.transport.default_origin if origin is _DEFAULT else origin
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.frames: list[Frame] = []
        self.messages: list[Received] = []
        self.errors: list[dict[str, Any]] = []
        """``error`` messages with no (or an unknown) renderer id."""
        self.renderers: dict[str, TestRenderer] = {}
        self.generation = 0
        """Counts connections: 1 after the first connect, 2 after a reconnect... (a
        resumed connection continues its session: it counts as the same one)."""
        self._socket_id = 0  # counts sockets, resumed ones included
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._socket: _Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = True
        self._changed = asyncio.Event()
        self._seq = itertools.count()
        self._callbacks: list[CallbackSpec] | None = None
        self._heartbeat_acks = 0
        self.reader_error: Exception | None = None
        """What broke the reader task (a frame it could not handle), if anything."""
        # Resume (resumable=True): the session's token and both sides' numbers.
        self.resumable = resumable
        self.token: str | None = None
        self.last_seq = 0
        """The last numbered server message applied."""
        self.duplicates = 0
        """Numbered server messages received again (a replay) and dropped."""
        self.lost: list[str] = []
        """The reasons of every ``session_lost`` received."""
        self._client_seq = 0
        self._client_log: list[tuple[int, str]] = []  # (seq, text) not acked by the server
        self._resumed = 0

    async def __aenter__(self) -> DashClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "open" if self.connected else f"closed {self.close_code}"
        return f"<DashClient {self.prefix!r} {state} renderers={len(self.renderers)}>"

    # -- paths and HTTP ---------------------------------------------------------------

    def path(self, name: str) -> str:
        """``name`` under the app's prefix (an absolute ``/path`` is kept as is)."""
        return name if name.startswith("/") else self.prefix + name

    async def http(self, method: str, path: str, *, json_body: Any = None,
                   headers: Mapping[str, str] | None = None,
                   timeout: float | None = None) -> HttpResponse:
        """An HTTP request to the server (``path`` relative to the app prefix unless absolute)."""
        all_headers = {**self.headers, **(headers or {})}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return await self.transport.http(method, self.path(path), body, all_headers,
                                         self.timeout if timeout is None else timeout)

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        """GET ``path`` and decode its JSON; fails unless the status is 200."""
        response = await self.http("GET", path, timeout=timeout)
        if response.status != 200:
            raise AssertionError(f"GET {self.path(path)} -> {response.status}: "
                                 f"{response.text[:300]}")
        return response.json()

    async def dependencies(self, *, refresh: bool = False) -> list[CallbackSpec]:
        """The app's callbacks, from ``_dash-dependencies`` (fetched once)."""
        if self._callbacks is None or refresh:
            deps = await self.get_json("_dash-dependencies")
            self._callbacks = [CallbackSpec.from_dependency(d) for d in deps]
        return self._callbacks

    async def callback(self, output: Any = None, *,
                       inputs: Values | None = None
                       ) -> CallbackSpec:
        """The one callback ``output`` (and/or ``inputs``) names; see :func:`resolve_callback`."""
        return resolve_callback(await self.dependencies(), output, inputs=inputs)

    async def persistent_callbacks(self) -> list[CallbackSpec]:
        return [spec for spec in await self.dependencies() if spec.persistent]

    async def call_http(
        self,
        output: Any = None,
        *,
        inputs: Values | None = None,
        state: Values | None = None,
        outputs: Sequence[PropRef] | None = None,
        triggered: Sequence[PropRef] | None = None,
        props: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> HttpCallbackResult:
        """POST a callback to ``_dash-update-component``, as the renderer does."""
        spec = await self.callback(output, inputs=inputs)
        payload = build_payload(spec, inputs=inputs, state=state, outputs=outputs,
                                triggered=triggered, props=props)
        response = await self.http("POST", "_dash-update-component", json_body=payload,
                                   timeout=timeout)
        return HttpCallbackResult(spec.id, response)

    # -- the WebSocket ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._socket is not None and not self._closed

    @property
    def closed(self) -> bool:
        """True once the current connection closed (or before the first connect)."""
        return self._closed

    async def connect(self, *, timeout: float | None = None) -> None:
        """Open the WebSocket (``_dash-ws-callback``). A server that accepts and then
        closes (a rejected origin, a hook saying no) shows in :meth:`wait_closed`."""
        if self.connected:
            return
        if self._socket is not None:  # closed by the server: let the old one go first
            await self.disconnect(timeout=timeout)
        headers = dict(self.headers)
        if self.origin is not None:
            headers["Origin"] = self.origin
        socket = await self.transport.open_websocket(
            self.path("_dash-ws-callback"), headers, self.timeout if timeout is None else timeout)
        self.generation += 1
        self._start_reading(socket)
        if self.resumable:
            await socket.send(json.dumps({"type": "hello", "payload": {"resume": 1}}))
            await self.wait_for(lambda: self.token is not None, "the session's token",
                                self.timeout if timeout is None else timeout)

    async def disconnect(self, code: int = 1000, reason: str = "",
                         *, timeout: float | None = None) -> None:
        """Close the WebSocket from the client side (a browser going away)."""
        socket, reader = self._socket, self._reader
        if socket is None:
            return
        self._socket = None
        limit = self.timeout if timeout is None else timeout
        try:
            # Also after a server-side close: in-process, this waits for the app's
            # handler (and its callbacks' cleanup) to end.
            await socket.close(code, reason, limit)
        finally:
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.wait([reader], timeout=limit)
            if not self._closed:
                self._closed = True
                self.close_code, self.close_reason = code, reason
            self._notify()

    async def reconnect(self, *, timeout: float | None = None) -> None:
        """Drop the connection and open a new one; every renderer that has not left
        sends ``renderer_joined`` again, as quartdash's worker does on reopening."""
        await self.disconnect(timeout=timeout)
        await self.connect(timeout=timeout)
        for renderer in self.renderers.values():
            if not renderer.left:
                await renderer.join()

    async def aclose(self) -> None:
        """Disconnect (if connected). Idempotent."""
        await self.disconnect()

    async def drop(self, *, timeout: float | None = None) -> None:
        """Lose the connection as a network would: no close frame. A resumable
        session then waits on the server for :meth:`resume`."""
        socket, reader = self._socket, self._reader
        if socket is None:
            return
        self._socket = None
        self._socket_id += 1  # what the old reader still sees is not ours
        limit = self.timeout if timeout is None else timeout
        await socket.drop(limit)
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader], timeout=limit)
        self._mark_closed(1006, "dropped")

    async def resume(self, *, timeout: float | None = None) -> str | None:
        """Open a new connection and resume the session on it. Returns None once
        resumed (what was missed replayed, our unacked messages resent), or the
        reason the server gave for not resuming (a fresh session then started)."""
        if not self.resumable or self.token is None:
            raise RuntimeError("resume() needs DashClient(resumable=True) and a session")
        limit = self.timeout if timeout is None else timeout
        lost_before, resumed_before = len(self.lost), self._resumed
        headers = dict(self.headers)
        if self.origin is not None:
            headers["Origin"] = self.origin
        socket = await self.transport.open_websocket(self.path("_dash-ws-callback"), headers,
                                                     limit)
        await socket.send(json.dumps({"type": "resume", "payload": {
            "token": self.token, "lastSeq": self.last_seq}}))
        self._start_reading(socket)
        await self.wait_for(lambda: len(self.lost) > lost_before or self._resumed > resumed_before,
                            "the server's answer to resume", limit)
        return self.lost[-1] if len(self.lost) > lost_before else None

    async def open_renderer(self, renderer_id: str | None = None,
                            props: Mapping[Any, Any] | None = None, *,
                            join: bool = True) -> TestRenderer:
        """A new fake tab on this connection (connecting first if never connected;
        on a connection the server closed, joining raises ConnectionClosed).

        ``join=True`` announces it with ``renderer_joined`` like quartdash's
        worker; ``join=False`` behaves like Dash's own worker, whose first
        message from a tab is its first ``callback_request``.
        """
        if self._socket is None:
            await self.connect()
        renderer_id = renderer_id or f"r-{uuid.uuid4().hex[:12]}"
        if renderer_id in self.renderers:
            raise ValueError(f"renderer {renderer_id!r} is already open on this client")
        renderer = self.renderers[renderer_id] = TestRenderer(self, renderer_id, props)
        if join:
            await renderer.join()
        return renderer

    async def send(self, message: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        """Send one message, or a list of messages as one batch frame (numbered
        and kept until acked on a resumable session)."""
        batch = not isinstance(message, Mapping)
        messages = [dict(message)] if isinstance(message, Mapping) else [dict(m) for m in message]
        if self.token is not None:
            for item in messages:
                if item.get("type") not in ("heartbeat", "ack", "hello", "resume"):
                    self._client_seq += 1
                    item["seq"] = self._client_seq
                    self._client_log.append((self._client_seq, json.dumps(item)))
            if self._socket is None or self._closed:
                return  # offline, as a tab during a drop: sent on resume
        await self.send_text(json.dumps(messages if batch else messages[0]))

    async def send_text(self, text: str) -> None:
        """Send a raw text frame."""
        if self._socket is None or self._closed:
            raise ConnectionClosed(
                f"cannot send: the connection is closed ({self.close_code} "
                f"{self.close_reason!r})", self.close_code, self.close_reason or "")
        try:
            await self._socket.send(text)
        except _Closed as closed:
            self._mark_closed(closed.code, closed.reason)
            raise ConnectionClosed(f"cannot send: the server closed the connection "
                                   f"({closed.code} {closed.reason!r})",
                                   closed.code, closed.reason) from None

    async def heartbeat(self, *, timeout: float = 5.0) -> None:
        """Send ``heartbeat`` and wait for its ``heartbeat_ack``."""
        want = self._heartbeat_acks + 1
        await self.send({"type": "heartbeat"})
        await self.wait_for(lambda: self._heartbeat_acks >= want, "a heartbeat_ack", timeout)

    async def wait_closed(self, *, timeout: float = 5.0) -> tuple[int | None, str]:
        """Wait until the server closes the connection; return ``(code, reason)``."""
        await self.wait_for(lambda: self._closed or None, "the server to close the connection",
                            timeout, fail_on_close=False)
        return self.close_code, self.close_reason or ""

    async def wait_for_error(self, code: str | None = None, *,
                             timeout: float = 5.0) -> dict[str, Any]:
        """Wait for an ``error`` message that names no renderer of this client."""

        def found() -> dict[str, Any] | None:
            for error in self.errors:
                if code is None or error.get("payload", {}).get("code") == code:
                    return error
            return None

        return await self.wait_for(found, f"a connection-level error {code or ''}", timeout)

    def of_type(self, kind: str) -> list[Received]:
        """Every received message of one ``type``, in order."""
        return [r for r in self.messages if r.type == kind]

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], T | bool | None], what: str,
                       timeout: float, *, fail_on_close: bool = True,
                       generation: int | None = None) -> T:
        """Wait until ``predicate()`` returns something true, and return it.

        Re-checked whenever a message arrives or the connection closes. Raises
        :class:`WaitTimeout` after ``timeout`` seconds, and with
        ``fail_on_close`` :class:`ConnectionClosed` as soon as the connection
        (or the one ``generation`` names) is closed with the wait unmet.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result  # type: ignore[return-value]
            if self.reader_error is not None:
                raise AssertionError(f"the client's reader failed while waiting for {what}: "
                                     f"{self.reader_error!r}") from self.reader_error
            if fail_on_close and generation is not None and generation != self.generation:
                raise ConnectionClosed(f"the connection that {what} was due on is gone "
                                       "(this client reconnected since)", None, "")
            if fail_on_close and self._closed:
                raise ConnectionClosed(
                    f"the connection closed ({self.close_code} {self.close_reason!r}) while "
                    f"waiting for {what}", self.close_code, self.close_reason or "")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout} s waiting for {what}; "
                                  f"{self._recent()}")
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                continue  # re-check once more, then fail above

    def _recent(self, count: int = 5) -> str:
        if not self.messages:
            return "nothing was received"
        shown = [json.dumps(r.message, default=repr)[:160] for r in self.messages[-count:]]
        return f"{len(self.messages)} messages received, the last: " + "; ".join(shown)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- the reader -----------------------------------------------------------------------------

    def _start_reading(self, socket: _Socket) -> None:
        self._socket_id += 1
        self._socket = socket
        self._closed = False
        self.close_code = self.close_reason = None
        self._reader = asyncio.create_task(self._read(socket, self._socket_id),
                                           name=f"quartdash-test-reader-{self._socket_id}")

    async def _read(self, socket: _Socket, socket_id: int) -> None:
        try:
            while True:
                data = await socket.recv()
                await self._on_frame(data.decode() if isinstance(data, bytes) else data)
                self._notify()
        except _Closed as closed:
            if socket_id == self._socket_id:
                self._mark_closed(closed.code, closed.reason)
        except Exception as error:
            # Surface it in every wait instead of letting waits time out blindly.
            self.reader_error = error
            self._notify()
            raise

    async def _on_control(self, message: dict[str, Any]) -> None:
        payload = message.get("payload") or {}
        kind = message.get("type")
        if kind == "session":
            self.token, self.last_seq, self._client_seq = payload["token"], 0, 0
            self._client_log = []
        elif kind == "resumed":
            self.token = payload["token"]
            got = int(payload["lastSeq"])
            self._client_log = [(s, t) for s, t in self._client_log if s > got]
            for _, text in self._client_log:  # what the server missed, once more
                await self.send_text(text)
            self._resumed += 1
        elif kind == "session_lost":
            self.lost.append(str(payload.get("reason")))
            self.token = None
            self.generation += 1  # what was due on the lost session will not come
        elif kind == "ack":
            got = int(payload["seq"])
            self._client_log = [(s, t) for s, t in self._client_log if s > got]

    async def _ack(self) -> None:
        if self._socket is not None and not self._closed:
            with contextlib.suppress(_Closed):
                await self._socket.send(json.dumps(
                    {"type": "ack", "payload": {"seq": self.last_seq}}))

    def _mark_closed(self, code: int | None, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self.close_code, self.close_reason = code, reason
        self._notify()

    async def _on_frame(self, text: str) -> None:
        now = time.monotonic()
        decoded = json.loads(text)
        batch = isinstance(decoded, list)
        messages = tuple(decoded) if batch else (decoded,)
        frame = Frame(len(self.frames), text, messages, now, batch)
        self.frames.append(frame)
        for message in messages:
            kind = message.get("type")
            if kind in _CONTROL:
                await self._on_control(message)
            seq = message.get("seq")
            if isinstance(seq, int) and self.token is not None:
                if seq <= self.last_seq:
                    self.duplicates += 1
                    continue  # replayed, and we had it: applied once
                self.last_seq = seq
                if seq % 16 == 0:
                    await self._ack()
            received = Received(next(self._seq), message, frame.index, now)
            self.messages.append(received)
            if kind == "heartbeat_ack":
                self._heartbeat_acks += 1
                continue
            if kind in _CONTROL:
                continue
            renderer = self.renderers.get(str(message.get("rendererId") or ""))
            if renderer is not None:
                await renderer._on_message(message, received)
            elif kind == "error":
                self.errors.append(message)
