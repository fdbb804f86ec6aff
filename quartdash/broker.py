"""SessionBroker: one per WebSocket connection, multiplexing every tab on it.

It owns, for its connection:

* the :class:`~quartdash.outbox.Outbox` and the one sender task draining it;
* the pending ``get_prop`` futures, keyed by request id;
* every callback task it started (:class:`Run`), grouped by renderer (tab);
* the persistent callbacks of each renderer, started on its first contact.

and shuts all of it down in order (close frame, wake waiters, end runs) so
that nothing outlives the connection.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dash import Patch
from dash.exceptions import PreventUpdate, WebsocketDisconnected

from . import protocol, signals
from .execute import run_callback, websocket_context
from .handle import WebSocketHandle
from .outbox import Outbox, OutboxOverflow
from .protocol import CloseCode, ErrorCode, Message, ProtocolError, clip
from .rules import ByteBudget, Inactivity, SendStall, TokenBucket

if TYPE_CHECKING:
    from .hosting import Host

log = logging.getLogger("quartdash.broker")

_PREVENT_UPDATE = {"status": "prevent_update"}

# Seconds of client silence, after our close frame, before we stop reading
# (a client normally answers the close at once; docs/reliability.md).
CLOSE_TIMEOUT = 5.0

# Close frames still waiting for a client that stopped reading, after their
# session's handler ended (strong references; each ends within CLOSE_TIMEOUT).
_finishing: set[asyncio.Task[None]] = set()

# Closes that a configured limit caused: reported as connection_rejected(reason="limit").
_LIMIT_CODES = frozenset({CloseCode.MESSAGE_TOO_BIG, CloseCode.FLOOD, CloseCode.SLOW_CONSUMER,
                          CloseCode.OVER_BUDGET})

# What one record (a tab, a run, a pending get_prop) costs against the retained
# budget besides the ids and payload it keeps: about the size of its objects.
RECORD_BYTES = 256


class Transport(Protocol):
    """The socket under a broker: Quart's websocket, or a test double."""

    async def receive(self) -> str | bytes: ...
    async def send(self, text: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


@dataclass(eq=False, slots=True)
class Renderer:
    """One tab (one dash-renderer instance) on the connection."""

    id: str
    runs: set[Run] = field(default_factory=set)
    persistent: dict[str, Run] = field(default_factory=dict)
    left: bool = False


@dataclass(eq=False, slots=True)
class Run:
    """One running callback and the requests waiting for its response."""

    renderer: Renderer
    callback_id: str
    persistent: bool
    request_ids: list[str]
    task: asyncio.Task[None] | None = None
    lingering: bool = False  # called ws.close(): may finish its cleanup
    retained: int = 0  # bytes charged to the connection's retained budget


def _cancel_event_triggered(runs: list[Run]) -> None:
    """Cancel the event-triggered runs now (persistent and lingering ones keep
    their grace). Called *before* pending get_prop futures fail, so a callback
    waiting in get_prop sees the ``CancelledError`` the seed promises rather
    than ``WebsocketDisconnected``."""
    for run in runs:
        if run.task is not None and not (run.persistent or run.lingering):
            run.task.cancel()


class SessionBroker:
    """One WebSocket connection: its tabs, running callbacks and outbound frames.

    Signals carry it as ``broker``: ``connection`` (the handshake's headers,
    cookies, path, remote, origin), ``renderers``, ``props_pushed`` and
    ``frames_sent`` are safe to read.
    """

    def __init__(self, host: Host, transport: Transport, connection: dict[str, Any]) -> None:
        self.host = host
        self.config = host.config
        self.transport = transport
        self.connection = connection
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.outbox = Outbox(self.config.max_pending, self.config.max_pending_bytes)
        self.renderers: dict[str, Renderer] = {}
        self.runs: dict[str, Run] = {}  # request id (or a synthetic one) -> run
        self.pending_props: dict[str, tuple[asyncio.Future[Any], Renderer]] = {}
        self.closed = False
        self.close_code: int | None = None
        self.frames_sent = 0
        self.props_pushed = 0  # set_props values accepted for sending (before coalescing)
        self.messages_received = 0
        self._close_request: tuple[int, str] | None = None
        self._close_sent = asyncio.Event()
        self._close_delivered = False  # our close frame reached the socket
        # A close frame still waiting for a client that stopped reading.
        self._close_pending: asyncio.Future[None] | None = None
        self._ids = itertools.count(1)
        self._serve_task: asyncio.Task[Any] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._persistent_ids = host.persistent_callback_ids()
        self.prop_policy = host.prop_policy
        now = self.loop.time()
        rate = float(self.config.max_messages_per_second)
        self._flood = TokenBucket(rate, rate * 2, now)
        self._idle = Inactivity(self.config.inactivity_timeout / 1000, now)
        self._stall = SendStall(self.config.send_timeout, now)
        # What the connection keeps of the client's data: ids, running requests.
        self.retained = ByteBudget(self.config.max_retained_bytes)
        # The rules are checked by one lazily armed timer each, not a polling loop.
        self._idle_timer: asyncio.TimerHandle | None = None
        self._send_watchdog: asyncio.TimerHandle | None = None

    # -- the connection's life -----------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the client leaves or the server closes; then shut down."""
        self._serve_task = asyncio.current_task()
        self._sender = asyncio.create_task(self._send_loop(), name="quartdash-sender")
        self._arm_idle_timer()
        self.host.brokers.add(self)
        signals.emit(signals.session_connected, self.host, broker=self)
        try:
            while self._close_request is None:
                data = await self.transport.receive()
                await self.on_frame(data)
        except asyncio.CancelledError:
            if self._close_request is None:
                raise  # the client went away, or the server is stopping
            # We cancelled ourselves to leave receive(): that is a close.
            if self._serve_task is not None:
                self._serve_task.uncancel()
        finally:
            # Quart cancels this handler as soon as the client answers our
            # close frame, i.e. in the middle of _shutdown: finish it anyway
            # (it is bounded by shutdown_grace), then let the cancel through.
            shutdown = asyncio.ensure_future(self._shutdown())
            cancelled = False
            task = asyncio.current_task()
            if self._close_request is not None and task is not None and not task.cancelling():
                try:
                    await self._linger()
                except asyncio.CancelledError:
                    cancelled = True
            while not shutdown.done():
                try:
                    await asyncio.shield(shutdown)
                except asyncio.CancelledError:
                    cancelled = True
            shutdown.result()
            if self._close_pending is not None:
                finishing = self._finish_close(self._close_pending)
                if cancelled:
                    # Quart stops waiting for us (granian reports a disconnect
                    # once the app has asked to close), but the frame still
                    # goes out when the client reads: keep it, bounded.
                    task = asyncio.ensure_future(finishing)
                    _finishing.add(task)
                    task.add_done_callback(_finishing.discard)
                else:
                    await finishing
            if cancelled:
                raise asyncio.CancelledError

    async def _finish_close(self, pending: asyncio.Future[None]) -> None:
        """Give a close frame that could not be written yet ``CLOSE_TIMEOUT``
        more seconds, after the session ended. uvicorn and granian only take a
        frame once the socket drains (hypercorn buffers it): a client that
        stopped reading and reads again finds the close code, not the
        disconnect the server would otherwise make of it."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(pending)
        except TimeoutError:
            pending.cancel()
        except (OSError, RuntimeError) as exc:
            log.debug("close frame not sent: %r", exc)

    async def _linger(self) -> None:
        """After our close frame, read and drop what the client still sends.

        Returns once the client has been silent for ``CLOSE_TIMEOUT``; a client
        that answers the close (or drops) makes Quart cancel us first. Leaving
        earlier is a leak: hypercorn hands frames that arrive after the app
        ended to a bounded queue nobody reads, and its connection then hangs
        for good (a flooding client would pin one socket per attempt).
        """
        await self._close_sent.wait()
        if not self._close_delivered:
            return  # a client that does not read cannot answer it either
        while True:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.transport.receive()
            except TimeoutError:
                return

    def request_close(self, code: int, reason: str) -> None:
        """Close the connection soon, from any task on the loop."""
        if self._close_request is not None or self.closed:
            return
        self._close_request = (code, reason)
        if code in _LIMIT_CODES:
            signals.emit(signals.connection_rejected, self.host, reason="limit", code=code,
                         detail=reason, broker=self)
        task = self._serve_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    async def close(self, code: int = 1000, reason: str = "Connection closed") -> None:
        """``ws.close()``: the calling callback lingers to clean up; others are cancelled."""
        current = asyncio.current_task()
        for run in self.runs.values():
            if run.task is current:
                run.lingering = True
        self.request_close(code, reason)
        if self._serve_task is not None:
            await self._close_sent.wait()

    async def _shutdown(self) -> None:
        self.closed = True
        # Before the runs are ended: lets waiters (broadcast subscriptions) see
        # is_shutdown now instead of sleeping into the grace-period cancel.
        signals.emit(signals.session_closing, self.host, broker=self)
        self.outbox.close()
        for timer in (self._idle_timer, self._send_watchdog):
            if timer is not None:
                timer.cancel()
        if self._sender is not None:
            # Stop the sender first: a send blocked on a client that stopped
            # reading holds the socket, and the close frame must get through.
            self._sender.cancel()
            await asyncio.wait([self._sender], timeout=1)
        if self._close_request is not None:
            self.close_code, reason = self._close_request
            closing = asyncio.ensure_future(self.transport.close(self.close_code, reason))
            try:
                async with asyncio.timeout(2):
                    await asyncio.shield(closing)
                self._close_delivered = True
            except TimeoutError:
                self._close_pending = closing  # serve() gives it a little longer
            except (OSError, RuntimeError) as exc:
                log.debug("close frame not sent: %r", exc)
        self._close_sent.set()
        _cancel_event_triggered(list(self.runs.values()))
        self._fail_get_props("the connection closed")
        await self._end_runs(list(self.runs.values()), self.host.shutdown_grace)
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.shutdown_grace)
        self.host.brokers.discard(self)
        self.host.closed_props_pushed += self.props_pushed
        self.host.closed_frames_sent += self.frames_sent
        for renderer_id in self.renderers:  # balance renderer_joined for tabs still open
            signals.emit(signals.renderer_left, self.host, broker=self, renderer_id=renderer_id)
        signals.emit(signals.session_disconnected, self.host, broker=self, code=self.close_code)

    async def _end_runs(self, runs: list[Run], grace: float) -> None:
        """End runs the way the seed promises.

        Event-triggered callbacks got ``CancelledError`` from the caller
        (:func:`_cancel_event_triggered`, once: a second cancel would cut
        their cleanup short). Persistent
        ones (and one that called ``ws.close()``) see ``is_shutdown`` and get
        ``grace`` seconds to leave their loop and clean up, then are cancelled.
        """
        tasks = [run.task for run in runs if run.task is not None and not run.task.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)

    # -- inbound --------------------------------------------------------------------

    async def on_frame(self, data: str | bytes) -> None:
        now = self.loop.time()
        self._stall.heard_from_client(now)  # the client is alive (send watchdog)
        limit = self.config.max_message_size
        size = protocol.utf8_size(data, limit)
        if size > limit:
            self.request_close(CloseCode.MESSAGE_TOO_BIG,
                               f"frame of {size} bytes exceeds {limit}")
            return
        try:
            messages, errors = protocol.parse_frame(data, max_batch=self.config.max_batch)
        except ProtocolError as error:
            if self._spend(now, 1):
                self.send_error(error)
            return
        # Every message spends a token, valid or not, before anything is
        # answered. The one exception is the answer to a get_prop we asked:
        # our request granted it, and it can be given once.
        cost = len(errors) + sum(1 for m in messages if not self._solicited(m))
        if not self._spend(now, cost):
            return
        for problem in errors:
            self.send_error(problem)
        hooks = self.host.message_hooks()
        for message in messages:
            if hooks and not await self._run_message_hooks(hooks, message):
                return
            self.dispatch(message)

    def _solicited(self, message: Message) -> bool:
        if message.type != protocol.GET_PROPS_RESPONSE:
            return False
        pending = self.pending_props.get(message.request_id or "")
        return pending is not None and not pending[0].done()

    def _spend(self, now: float, tokens: int) -> bool:
        if tokens == 0 or self._flood.take(now, tokens):
            return True
        self.request_close(CloseCode.FLOOD, "too many messages per second")
        return False

    async def _run_message_hooks(self, hooks: list[Callable[..., Any]], message: Message) -> bool:
        raw = message.raw if message.raw is not None else {"type": message.type}
        verdict = await self.host.run_hooks(hooks, self.connection_object, raw)
        if verdict is None:
            return True
        code, reason = verdict
        if code == 0:  # a hook may refuse one message without closing
            self.send_error(ProtocolError(ErrorCode.REJECTED, reason,
                                          renderer_id=message.renderer_id,
                                          request_id=message.request_id))
            return False
        self.request_close(code, reason)
        signals.emit(signals.connection_rejected, self.host, reason="hook", code=code,
                     detail=reason, broker=self)
        return False

    @property
    def connection_object(self) -> Any:
        """What hooks receive as their ``ws`` argument (Quart's websocket)."""
        return self.connection.get("websocket")

    def dispatch(self, message: Message) -> None:
        kind = message.type
        self.messages_received += 1
        if kind == protocol.HEARTBEAT:
            # Not activity: a client that only says it is alive is idle.
            self._push(protocol.HEARTBEAT_ACK_FRAME, activity=False)
            return
        self._idle.touch(self.loop.time())
        if kind == protocol.RENDERER_LEFT:
            self.renderer_left(message.renderer_id)
            return
        renderer = self.renderer(message.renderer_id)
        if renderer is None:
            return
        if kind == protocol.CALLBACK_REQUEST:
            self.start_request(renderer, message)
        elif kind == protocol.GET_PROPS_RESPONSE:
            self.resolve_prop(renderer, message)
        # RENDERER_JOINED: first contact already handled by self.renderer()

    # -- renderers ------------------------------------------------------------------

    def renderer(self, renderer_id: str) -> Renderer | None:
        """The renderer with this id; its first contact starts its persistent callbacks."""
        renderer = self.renderers.get(renderer_id)
        if renderer is not None:
            return renderer
        if len(self.renderers) >= self.config.max_renderers:
            self.send_error(ProtocolError(ErrorCode.TOO_MANY_RENDERERS,
                                          f"more than {self.config.max_renderers} tabs on one "
                                          "connection", renderer_id=renderer_id))
            return None
        if not self._retain(RECORD_BYTES + len(renderer_id)):
            return None
        renderer = self.renderers[renderer_id] = Renderer(renderer_id)
        signals.emit(signals.renderer_joined, self.host, broker=self, renderer_id=renderer_id)
        for callback_id in self._persistent_ids:
            self._start_persistent(renderer, callback_id, [])
        return renderer

    def renderer_left(self, renderer_id: str) -> None:
        renderer = self.renderers.pop(renderer_id, None)
        if renderer is None:
            return
        self.retained.release(RECORD_BYTES + len(renderer_id))
        renderer.left = True
        _cancel_event_triggered(list(renderer.runs))
        self._fail_get_props("the tab went away", renderer)
        signals.emit(signals.renderer_left, self.host, broker=self, renderer_id=renderer_id)
        if renderer.runs:
            self._in_background(self._end_runs(list(renderer.runs), self.config.shutdown_grace))

    def _retain(self, size: int) -> bool:
        """Charge the retained budget; over it, the connection closes with 4010."""
        if self.retained.charge(size):
            return True
        self.request_close(CloseCode.OVER_BUDGET,
                           f"over the connection's budget of {self.retained.limit} bytes")
        return False

    def _in_background(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- callbacks ------------------------------------------------------------------

    def start_request(self, renderer: Renderer, message: Message) -> None:
        request_id = message.request_id
        assert request_id is not None
        payload = message.payload
        callback_id = payload["output"]

        def refuse(code: ErrorCode, why: str) -> None:
            self._push(protocol.callback_response_frame(
                renderer.id, request_id, {"status": "error", "code": code.value, "message": why}))

        if request_id in self.runs:
            self.send_error(ProtocolError(ErrorCode.DUPLICATE_REQUEST,
                                          "this request is already running",
                                          renderer_id=renderer.id, request_id=request_id))
            return
        spec = self.host.callback_spec(callback_id)
        if spec is None:
            refuse(ErrorCode.UNKNOWN_CALLBACK, f"no callback {clip(callback_id)} in this app")
            return
        if not (self.config.enabled or spec.get("websocket")):
            refuse(ErrorCode.NOT_WEBSOCKET,
                   f"callback {clip(callback_id)} is not WebSocket-enabled: pass "
                   "websocket=True to the callback or websocket_callbacks=True to the app")
            return
        for key in ("inputs", "state"):
            got, want = len(payload.get(key, [])), len(spec.get(key, []))
            if got != want:
                refuse(ErrorCode.BAD_MESSAGE,
                       f"callback {clip(callback_id)} takes {want} {key}, the request has {got}")
                return
        if callback_id in self._persistent_ids:
            running = renderer.persistent.get(callback_id)
            if running is not None:
                self._rerequest(running, request_id)  # no second instance
            else:
                self._start_persistent(renderer, callback_id, [request_id], payload,
                                       message.size)
            return
        if len(self.runs) >= self.config.max_concurrent_callbacks:
            refuse(ErrorCode.TOO_MANY_CALLBACKS,
                   f"more than {self.config.max_concurrent_callbacks} callbacks running on "
                   "this connection")
            return
        run = Run(renderer, callback_id, False, [request_id])
        if self._charge_run(run, message.size):
            self._launch(run, request_id, payload)

    def _charge_run(self, run: Run, payload_size: int) -> bool:
        size = RECORD_BYTES + payload_size + sum(len(r) for r in run.request_ids)
        if not self._retain(size):
            return False
        run.retained = size
        return True

    def _rerequest(self, run: Run, request_id: str) -> None:
        """A request for a persistent callback that is already running (a renderer
        re-triggers them after every reconnect). Only the newest request waits for
        the run's end; the one it supersedes is answered now, so a client cannot
        pile up request ids."""
        if not self._retain(len(request_id)):
            return
        run.retained += len(request_id)
        if len(run.request_ids) > 0 and run.request_ids[-1] in self.runs:
            older = run.request_ids.pop()
            del self.runs[older]
            run.retained -= len(older)
            self.retained.release(len(older))
            self._push(protocol.callback_response_frame(run.renderer.id, older, _PREVENT_UPDATE))
        run.request_ids.append(request_id)
        self.runs[request_id] = run

    def _start_persistent(
        self,
        renderer: Renderer,
        callback_id: str,
        request_ids: list[str],
        payload: dict[str, Any] | None = None,
        payload_size: int = 0,
    ) -> None:
        if len(self.runs) >= self.config.max_concurrent_callbacks:
            log.warning("persistent callback %s not started: connection at its callback limit",
                        callback_id)
            return
        run = Run(renderer, callback_id, True, request_ids)
        if not self._charge_run(run, payload_size):
            return
        renderer.persistent[callback_id] = run
        key = request_ids[0] if request_ids else f"persistent-{next(self._ids)}"
        body = payload or {"output": callback_id, "outputs": [], "inputs": [], "state": [],
                           "changedPropIds": []}
        self._launch(run, key, body)

    def _launch(self, run: Run, key: str, payload: dict[str, Any]) -> None:
        self.runs[key] = run
        run.renderer.runs.add(run)
        run.task = asyncio.create_task(self._execute(run, payload), name=f"quartdash:{key}")

    async def _execute(self, run: Run, payload: dict[str, Any]) -> None:
        renderer = run.renderer
        handle = WebSocketHandle(self, renderer)
        started = self.loop.time()
        started_signal = signals.persistent_started if run.persistent else signals.callback_started
        signals.emit(started_signal, self.host, broker=self, renderer_id=renderer.id,
                     callback_id=run.callback_id)
        reply: Callable[[str], bytes] | None = None
        status = "cancelled"  # unless the callback returns or raises an Exception
        try:
            # Inside the try: whatever fails here still answers the request
            # and forgets the run (a task that died first would leak both).
            ctx = websocket_context(payload, handle=handle,
                                    response=self.host.response_adapter(),
                                    connection=self.connection)
            data = await run_callback(self.host.dash, payload, ctx, self.host.executor)
            reply = lambda rid: protocol.callback_ok_frame(renderer.id, rid, data)  # noqa: E731
            status = "ok"
        except (PreventUpdate, WebsocketDisconnected):
            reply = lambda rid: protocol.callback_response_frame(  # noqa: E731
                renderer.id, rid, _PREVENT_UPDATE)
            status = "prevent_update"
        except Exception as error:
            log.error("WebSocket callback %s failed", run.callback_id, exc_info=error)
            failure = self._failure_payload(error)
            reply = lambda rid: protocol.callback_response_frame(  # noqa: E731
                renderer.id, rid, failure)
            signals.emit(signals.callback_failed, self.host, broker=self,
                         renderer_id=renderer.id, callback_id=run.callback_id,
                         duration=self.loop.time() - started, error=error,
                         persistent=run.persistent)
            status = "error"
        finally:
            # Every start is paired with exactly one end signal, cancellation included.
            self._forget(run)
            duration = self.loop.time() - started
            if run.persistent:
                signals.emit(signals.persistent_stopped, self.host, broker=self,
                             renderer_id=renderer.id, callback_id=run.callback_id,
                             duration=duration)
            elif status != "error":
                signals.emit(signals.callback_finished, self.host, broker=self,
                             renderer_id=renderer.id, callback_id=run.callback_id,
                             duration=duration, status=status)
        if reply is not None and not (self.closed or renderer.left):
            for request_id in run.request_ids:
                self._push(reply(request_id))

    def _failure_payload(self, error: Exception) -> dict[str, Any]:
        if self.host.debug:
            detail = "".join(traceback.format_exception(error))
            return {"status": "error", "message": f"{type(error).__name__}: {error}\n\n{detail}"}
        # Outside debug mode the client learns that it failed, never how.
        return {"status": "error", "message": "Callback error (see the server log)"}

    def _forget(self, run: Run) -> None:
        self.retained.release(run.retained)
        run.retained = 0
        for request_id in run.request_ids:
            self.runs.pop(request_id, None)
        for key, value in list(self.runs.items()):
            if value is run:
                del self.runs[key]
        run.renderer.runs.discard(run)
        if run.persistent and run.renderer.persistent.get(run.callback_id) is run:
            del run.renderer.persistent[run.callback_id]

    # -- set_props and get_prop -------------------------------------------------------

    def push_prop(self, renderer: Renderer, component_id: str, prop: str, value: Any) -> None:
        if self.closed or renderer.left:
            return
        frame = protocol.set_props_frame(renderer.id, component_id, {prop: value})
        self.props_pushed += 1
        self._idle.touch(self.loop.time())
        try:
            self.outbox.push_prop((renderer.id, component_id, prop), frame,
                                  is_patch=isinstance(value, Patch))
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def push_encoded_prop(self, renderer: Renderer | None, component_id: str, prop: str,
                          payload: bytes, *, is_patch: bool) -> None:
        """Queue a ``set_props`` whose payload (``protocol.set_props_payload``) is ready JSON.

        Broadcast uses it so one encoding serves every session; ``renderer=None``
        means every tab on this connection. Coalesces exactly like :meth:`push_prop`.
        """
        if self.closed:
            return
        targets = list(self.renderers.values()) if renderer is None else [renderer]
        self._idle.touch(self.loop.time())
        try:
            for target in targets:
                if not target.left:
                    frame = protocol.set_props_frame_from_payload(target.id, payload)
                    self.props_pushed += 1
                    self.outbox.push_prop((target.id, component_id, prop), frame,
                                          is_patch=is_patch)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def _push(self, frame: bytes, *, activity: bool = True) -> None:
        if activity:
            self._idle.touch(self.loop.time())
        try:
            self.outbox.push(frame)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    async def get_prop(self, renderer: Renderer, component_id: str, prop: str,
                       timeout: float) -> Any:
        if self.closed or renderer.left:
            raise WebsocketDisconnected("the connection is closed")
        if not self._retain(RECORD_BYTES):
            raise WebsocketDisconnected("the connection is over its budget")
        request_id = f"p{next(self._ids)}"
        future: asyncio.Future[Any] = self.loop.create_future()
        self.pending_props[request_id] = (future, renderer)
        self._push(protocol.get_props_request_frame(renderer.id, request_id, component_id, [prop]))
        try:
            async with asyncio.timeout(timeout):
                values = await future
        except TimeoutError:
            raise TimeoutError(
                f"get_prop({component_id!r}, {prop!r}): no answer within {timeout} s"
            ) from None
        finally:
            self.pending_props.pop(request_id, None)
            self.retained.release(RECORD_BYTES)
        return values.get(prop) if isinstance(values, dict) else None

    def _fail_get_props(self, reason: str, renderer: Renderer | None = None) -> None:
        """Fail the pending get_prop futures (of one tab, or all) with WebsocketDisconnected."""
        for request_id, (future, owner) in list(self.pending_props.items()):
            if renderer is None or owner is renderer:
                del self.pending_props[request_id]
                if not future.done():
                    future.set_exception(WebsocketDisconnected(reason))

    def resolve_prop(self, renderer: Renderer, message: Message) -> None:
        key = message.request_id or ""
        pending = self.pending_props.get(key)
        if pending is None or pending[1] is not renderer or pending[0].done():
            # Not popped: another tab's (or a forged) answer must not cancel
            # the question its own tab is still going to answer.
            self.send_error(ProtocolError(
                ErrorCode.UNKNOWN_REQUEST,
                "no get_props request of this id is waiting for an answer",
                renderer_id=renderer.id, request_id=message.request_id))
            return
        del self.pending_props[key]
        pending[0].set_result(message.payload)

    def send_error(self, error: ProtocolError) -> None:
        self._push(protocol.error_frame(error), activity=False)

    # -- outbound -----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        outbox, send, loop = self.outbox, self.transport.send, self.loop
        while True:
            await outbox.wait()
            if outbox.closed:
                return
            text = protocol.batch(outbox.drain()).decode()
            self._stall.send_started(loop.time())
            if self._send_watchdog is None:
                self._arm_send_watchdog(self.config.send_timeout)
            await send(text)
            self._stall.send_finished()
            self.frames_sent += 1

    # A send blocks only when the client reads slower than we write (TCP
    # back-pressure). One lazily armed timer watches the sends instead of a
    # timeout per send: most sends complete at once, so it rarely exists.
    # A client counts as stuck, and is closed with 4009, only when a send has
    # been blocked for send_timeout *and* it sent nothing meanwhile: a slow
    # reader that is still alive (heartbeats, answers) keeps its connection,
    # its pushes coalesced to the latest values until it catches up.

    def _arm_send_watchdog(self, delay: float) -> None:
        self._send_watchdog = self.loop.call_later(delay, self._check_send)

    def _check_send(self) -> None:
        self._send_watchdog = None
        remaining = self._stall.remaining(self.loop.time())
        if remaining is None or self.closed:
            return
        if remaining <= 0:
            self.request_close(CloseCode.SLOW_CONSUMER, f"a send blocked for more than "
                               f"{self._stall.timeout} s on a silent client")
        else:
            self._arm_send_watchdog(remaining)

    # -- inactivity ----------------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        remaining = self._idle.remaining(self.loop.time())
        if remaining is None or self.closed:
            return
        if remaining <= 0:
            self.request_close(CloseCode.REJECTED, "Inactivity timeout")
        else:
            self._idle_timer = self.loop.call_later(remaining, self._arm_idle_timer)

    def __repr__(self) -> str:
        return (f"<SessionBroker renderers={len(self.renderers)} runs={len(self.runs)} "
                f"closed={self.closed}>")
