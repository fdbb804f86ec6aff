"""Session: one browser connection, multiplexing every tab on it.

A session owns, for its connection:

* the tabs (:class:`~quartdash.session.records.Renderer`), each joining on
  its first message;
* the callback runs (:class:`~quartdash.session.runs.Runs`);
* the pending ``get_prop`` questions (:class:`~quartdash.session.reads.PropReads`);
* the outbound side (:class:`~quartdash.session.sender.Sender`);
* the connection's rules: flood, inactivity, byte budgets
  (:mod:`quartdash.wire.rules`);

and shuts all of it down in order (close frame, wake waiters, end runs) so
that nothing outlives the connection. It knows its app and its socket only
through :class:`~quartdash.types.SessionApp` and
:class:`~quartdash.types.Transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import threading
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import signals
from ..config import WebSocketConfig
from ..types import Identity, SessionApp, Transport
from ..wire import protocol
from ..wire.outbox import Outbox, OutboxOverflow
from ..wire.protocol import CloseCode, ErrorCode, LostReason, Message, ProtocolError
from ..wire.replay import ReplayLog
from ..wire.rules import ByteBudget, Inactivity, TokenBucket
from .deadlines import deadlines
from .handle import WebSocketHandle
from .info import SessionInfo
from .reads import PropReads
from .records import RECORD_BYTES, Renderer
from .runs import Runs, cancel_event_triggered, end_runs
from .sender import Sender, wait_ended

__all__ = ["CLOSE_TIMEOUT", "Session", "State"]

log = logging.getLogger("quartdash.session")

# Seconds of client silence, after our close frame, before we stop reading
# (a client normally answers the close at once; docs/reliability.md).
CLOSE_TIMEOUT = 5.0
# Seconds we try to send our close frame (a client that does not read never gets it).
CLOSE_SEND_TIMEOUT = 2.0

# Close frames still waiting for a client that stopped reading, after their
# session's serve() ended (strong references; each ends within CLOSE_TIMEOUT).
_finishing: set[asyncio.Task[None]] = set()

# Seconds an inactivity close may come late at most (shared timers: deadlines.py);
# a timeout under 20 s gets a twentieth of it.
IDLE_RESOLUTION = 1.0

# Client messages received between two acks we send back (and one with each heartbeat).
ACK_EVERY = 32

_CONTROL = frozenset({protocol.HELLO, protocol.RESUME, protocol.ACK})

# Closes that a configured limit caused: reported as connection_rejected(reason="limit").
_LIMIT_CODES = frozenset({CloseCode.MESSAGE_TOO_BIG, CloseCode.FLOOD, CloseCode.SLOW_CONSUMER,
                          CloseCode.OVER_BUDGET})


class State(enum.Enum):
    """A session's life: OPEN <-> DETACHED -> CLOSING -> CLOSED."""

    OPEN = "open"
    """Serving its transport."""
    DETACHED = "detached"
    """Its socket dropped; it waits ``resume_timeout`` for the client to come
    back. Callbacks keep running; what they push waits."""
    CLOSING = "closing"
    """Closing (a close was asked for, or the client went): nothing new is sent or started."""
    CLOSED = "closed"
    """Shut down: every task it started has ended."""


@dataclass(slots=True)
class _Close:
    """The server's own close: what it sends, and how far it got."""

    code: int
    reason: str
    sent: asyncio.Event = field(default_factory=asyncio.Event)  # tried (or given up)
    delivered: bool = False  # the close frame reached the socket
    # A close frame the transport could not take yet (the client stopped reading).
    pending: asyncio.Future[None] | None = None


class Session:
    """One WebSocket connection: its tabs, running callbacks and outbound frames.

    Signals carry it as ``session``: ``id``, ``identity``, ``connection`` (the
    handshake's headers, cookies, path, remote, origin), ``renderers``,
    ``props_pushed``, ``events_sent``, ``events_dropped`` and ``frames_sent``
    are safe to read; :meth:`snapshot` copies all of it.
    """

    # Slots: a server holds tens of thousands of these; an instance dict of
    # this many attributes costs ~1.6 KB. __weakref__: LiveApp keeps weak maps.
    __slots__ = ("__weakref__", "_background", "_client_acked", "_close", "_closed", "_detached",
                 "_expiry", "_flood", "_idle", "_idle_slot", "_lost", "_serve_task",
                 "_takeover", "_volume", "app", "binding", "bytes_received", "client_seq",
                 "close_code", "config", "connected_at", "connection", "events_dropped",
                 "events_sent", "id", "identity", "loop", "messages_received", "props_pushed",
                 "reads", "renderers", "retained", "runs", "sender", "state", "thread_id",
                 "token")

    def __init__(self, app: SessionApp, connection: Mapping[str, Any], *,
                 binding: str = "", identity: Identity | None = None) -> None:
        self.app = app
        self.config: WebSocketConfig = app.config
        self.connection = connection
        self.id = secrets.token_hex(8)  # public: listings, presence (the token is not)
        self.identity = identity
        self.connected_at = time.time()
        self.bytes_received = 0
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.state = State.OPEN
        self.close_code: int | None = None
        self.renderers: dict[str, Renderer] = {}
        self.props_pushed = 0  # set_props values accepted for sending (before coalescing)
        self.events_sent = 0  # send_event events queued for sending
        self.events_dropped = 0  # events that did not fit the event budget
        self.messages_received = 0
        self._close: _Close | None = None
        # Created when someone waits (most sessions never do): an idle
        # session's memory is mostly what it holds just in case.
        self._closed: asyncio.Event | None = None
        self._serve_task: asyncio.Task[Any] | None = None
        # Resume: the token that brings this session back to a new socket, and
        # what the connection must match (origin, cookies) to be allowed to.
        self.token: str | None = None
        self.binding = binding
        self.client_seq = 0  # the last client message received (resumable sessions)
        self._client_acked = 0
        self._takeover = False
        self._detached: asyncio.Event | None = None  # created by a takeover's wait
        self._expiry: asyncio.TimerHandle | None = None
        self._lost = LostReason.EXPIRED  # what a resume learns once this session ended
        self._background: set[asyncio.Task[None]] | None = None  # made on first use
        now = self.loop.time()
        rate = float(self.config.max_messages_per_second)
        self._flood = TokenBucket(rate, rate * 2, now)
        # Parse work: bytes weighted by nesting. Over it the session reads slower.
        byte_rate = float(self.config.max_bytes_per_second)
        self._volume = TokenBucket(byte_rate, max(2 * byte_rate,
                                                  4.0 * self.config.max_message_size), now)
        self._idle = Inactivity(self.config.inactivity_timeout / 1000, now)
        self._idle_slot: float | None = None  # its slot in the loop's shared deadlines
        # What the connection keeps of the client's data: ids, running requests.
        self.retained = ByteBudget(self.config.max_retained_bytes)
        self.sender = Sender(self.config, self.loop, self._stalled)
        self.reads = PropReads(self.loop)
        self.runs = Runs(self)

    # -- what others read ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True from the moment the session starts closing (a detached session,
        waiting for its client, is not closed)."""
        return self.state is State.CLOSING or self.state is State.CLOSED

    @property
    def outbox(self) -> Outbox:
        return self.sender.outbox

    @property
    def frames_sent(self) -> int:
        return self.sender.frames_sent

    @property
    def bytes_sent(self) -> int:
        return self.sender.bytes_sent

    def snapshot(self, app: str = "") -> SessionInfo:
        """A copy of what this session is now (``app``: the name to list it under)."""
        remote = self.connection.get("remote")
        origin = self.connection.get("origin")
        return SessionInfo(
            id=self.id, app=app, identity=self.identity,
            remote=None if remote is None else str(remote),
            origin=None if origin is None else str(origin),
            connected_at=self.connected_at, state=self.state.value,
            tabs=tuple(self.renderers), running=tuple(run.callback_id for run in self.runs),
            bytes_in=self.bytes_received, bytes_out=self.sender.bytes_sent,
            messages_in=self.messages_received, frames_out=self.sender.frames_sent,
            props_pushed=self.props_pushed,
        )

    @property
    def connection_object(self) -> Any:
        """What hooks receive as their ``ws`` argument (Quart's websocket)."""
        return self.connection.get("websocket")

    # -- the connection's life -----------------------------------------------------------

    def serve(self, transport: Transport, first: str | bytes | None = None, *,
              lost: LostReason | None = None) -> Coroutine[Any, Any, None]:
        """Serve a new connection: read frames (``first`` already read) until the
        client leaves or the server closes; then shut down, or, when the client
        can resume and just lost its socket, wait for it (:meth:`resume`).

        ``lost``: the client asked to resume a session that cannot be: it is
        told so first (``session_lost``), and this fresh session is resumable.
        The caller may cancel this task at any time (the client went away).

        Returns the coroutine that does all this (await it, or make it a
        task): a wrapper coroutine would be one more frame kept alive under
        every connection.
        """
        return self._serve(transport, first, opening=True, lost=lost)

    async def resume(self, transport: Transport, last_seq: int) -> LostReason | None:
        """Serve ``transport`` as this session's new socket; the client applied
        every message up to ``last_seq``. Returns when the connection ends (None),
        or at once with the reason when the session cannot be resumed."""
        if self.state is State.OPEN:
            await self._take_over()  # the old socket is dead; the server had not noticed
        if self.state is not State.DETACHED:
            return self._lost
        log_ = self.sender.log
        if log_ is None or last_seq > self.sender.seq or log_.since(last_seq) is None:
            self.request_close(CloseCode.GOING_AWAY, "what the client missed was lost")
            return LostReason.BUDGET
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.token = self.app.registry.issue_token(self)  # single use
        self.state = State.OPEN
        log_.ack(last_seq)
        try:
            # The client learns its next token and what we last received,
            # then gets what it missed, in order, before anything new.
            await transport.send(protocol.resumed_frame(self.token, self.client_seq).decode())
            replayed = len(log_)
            await self.sender.replay(transport, last_seq)
        except (OSError, RuntimeError) as exc:
            log.debug("resume: the new socket failed at once: %r", exc)
        else:
            signals.emit(signals.session_resumed, self.app, session=self, replayed=replayed)
        await self._serve(transport, None)
        return None

    async def _serve(self, transport: Transport, first: str | bytes | None, *,
                     opening: bool = False, lost: LostReason | None = None) -> None:
        if opening:  # a new connection (serve()), not a resumed one
            self.app.session_opened(self)
            signals.emit(signals.session_connected, self.app, session=self)
            if lost is not None:
                self.push(protocol.session_lost_frame(lost), control=True)
                signals.emit(signals.resume_failed, self.app, session=self, reason=lost.value)
                self._become_resumable()
        task = asyncio.current_task()
        self._serve_task = task
        self._takeover = False
        if self._detached is not None:
            self._detached.clear()
        self.sender.start(transport)
        self._arm_idle_timer()
        try:
            if first is not None:
                await self.on_frame(first)
            while self._close is None:
                data = await transport.receive()
                await self.on_frame(data)
        except asyncio.CancelledError:
            assert task is not None
            if self._close is None and self._takeover:
                task.uncancel()  # a new socket takes over: wait for nobody
                # Shielded: the server may cancel us again as it notices the
                # old socket's end, and a half-done detach has no expiry.
                await _shielded(self._detach(transport, superseded=True))
                return
            if self._close is not None:
                task.uncancel()  # we cancelled ourselves to leave receive(): a close
            elif self._may_detach():
                await _shielded(self._detach(transport))
                raise  # the client went away: the server ends the handler
            else:
                await self._end(transport, cancelled=True)
        except Exception:
            if self._close is None and self._may_detach():
                await _shielded(self._detach(transport))
            else:
                await self._end(transport, cancelled=False)
            raise
        await self._end(transport, cancelled=False)

    async def _end(self, transport: Transport, cancelled: bool) -> None:
        """Shut down after the transport's end; re-raise a cancellation after.

        The server cancels the handler as soon as the client answers our close
        frame, i.e. in the middle of _shutdown: finish it anyway (it is bounded
        by shutdown_grace), then let the cancel through.
        """
        shutdown = asyncio.ensure_future(self._shutdown(transport))
        task = asyncio.current_task()
        if self._close is not None and not cancelled and task is not None \
                and not task.cancelling():
            try:
                await self._linger(transport)
            except asyncio.CancelledError:
                cancelled = True
        while not shutdown.done():
            try:
                await asyncio.shield(shutdown)
            except asyncio.CancelledError:
                cancelled = True
        shutdown.result()
        pending = self._close.pending if self._close is not None else None
        if pending is not None:
            finishing = _finish_close(pending)
            if cancelled:
                # The server stops waiting for us (granian reports a
                # disconnect once the app has asked to close), but the frame
                # still goes out if the client reads: keep it, bounded.
                _keep(asyncio.ensure_future(finishing))
            else:
                await finishing
        if cancelled:
            raise asyncio.CancelledError

    # -- resume ------------------------------------------------------------------------

    def _may_detach(self) -> bool:
        # Worth keeping: a client that can resume, with a tab still open.
        return (self.token is not None and self.config.resume_timeout > 0
                and self.state is State.OPEN and bool(self.renderers))

    def _become_resumable(self) -> None:
        """The client can resume (``hello``): number messages from now on."""
        if self.token is not None or self.config.resume_timeout <= 0:
            return
        self.sender.log = ReplayLog(self.config.max_pending_bytes)
        self.token = self.app.registry.issue_token(self)
        self.push(protocol.session_frame(self.token, self.config.resume_timeout),
                  control=True)

    async def _detach(self, transport: Transport, superseded: bool = False) -> None:
        """The socket is gone but the client may come back: keep everything,
        send nothing, and wait ``resume_timeout`` for :meth:`resume`."""
        # Everything up to the first await: a resume may run as soon as we yield,
        # and must find the session fully detached (an expiry it can cancel).
        self.state = State.DETACHED
        self._disarm_idle_timer()
        sending = self.sender.pause()
        self._expiry = self.loop.call_later(self.config.resume_timeout, self._expire)
        signals.emit(signals.session_detached, self.app, session=self)
        if self._detached is not None:
            self._detached.set()  # the new socket goes on now, not after the old one's close
        await wait_ended(sending)
        if superseded:
            with contextlib.suppress(TimeoutError, OSError, RuntimeError):
                async with asyncio.timeout(1):
                    await transport.close(CloseCode.SUPERSEDED, "Resumed on a new connection")

    async def _take_over(self) -> None:
        """A resume while the old socket still looks open (it died silently):
        detach from it first."""
        self._takeover = True
        task = self._serve_task
        if task is not None and not task.done():
            task.cancel()
        if self._detached is None:
            self._detached = asyncio.Event()
        detached = self._detached
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SEND_TIMEOUT):
                await detached.wait()

    def _expire(self) -> None:
        self._expiry = None
        self._lost = LostReason.EXPIRED
        self.request_close(CloseCode.GOING_AWAY, "resume window over")

    # -- closing -----------------------------------------------------------------------

    async def _linger(self, transport: Transport) -> None:
        """After our close frame, read and drop what the client still sends.

        Returns after ``CLOSE_TIMEOUT`` at most; a client that answers the close
        (or drops) makes the server cancel us first.
        Leaving earlier is a leak: hypercorn hands frames that arrive after the
        app ended to a bounded queue nobody reads, and its connection then hangs
        for good (a flooding client would pin one socket per attempt).
        """
        close = self._close
        assert close is not None
        await close.sent.wait()
        if not close.delivered:
            return  # a client that does not read cannot answer it either
        # One deadline for the whole linger, not per frame: a client that keeps
        # sending and never answers the close must not keep the socket.
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                while True:
                    await transport.receive()
        except TimeoutError:
            return

    def request_close(self, code: int, reason: str) -> None:
        """Close the connection soon, from any task on the loop."""
        if self._close is not None or self.state is State.CLOSED:
            return
        self._close = _Close(code, reason)
        detached = self.state is State.DETACHED
        self.state = State.CLOSING
        if code in _LIMIT_CODES:
            signals.emit(signals.connection_rejected, self.app, reason="limit", code=code,
                         detail=reason, session=self)
            self._lost = LostReason.BUDGET
        if detached:
            # No socket to close: end at once (a resume learns why: _lost).
            if self._expiry is not None:
                self._expiry.cancel()
            self._close.sent.set()
            _keep(asyncio.ensure_future(self._shutdown(None)))
            return
        task = self._serve_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "Closed by the server",
                    *, timeout: float = CLOSE_SEND_TIMEOUT + 1) -> None:
        """Close the connection from anywhere on the loop (an admin route, a
        revoke) and return once the close frame went out, at most ``timeout``
        seconds later. A detached session (waiting for its client) ends at
        once. Its callbacks are then ended as on any close.

        With :attr:`CloseCode.REVOKED` the session cannot be resumed: a late
        ``resume`` with its token learns ``revoked``.
        """
        if code == CloseCode.REVOKED and self._close is None:
            self._lost = LostReason.REVOKED
        self.request_close(code, reason)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.close_frame_sent()

    async def close_from_callback(self, code: int, reason: str) -> None:
        """``ws.close()``: the calling callback lingers to clean up; others are cancelled."""
        self.runs.mark_lingering(asyncio.current_task())
        self.request_close(code, reason)
        if self._serve_task is not None and self._close is not None:
            await self._close.sent.wait()

    async def close_frame_sent(self) -> None:
        """Return once the server's close frame went out (or could not), or the
        session ended without one."""
        if self._close is not None:
            await self._close.sent.wait()
        else:
            await self.wait_closed()

    async def wait_closed(self) -> None:
        """Return once the session has shut down."""
        if self.state is State.CLOSED:
            return
        if self._closed is None:
            self._closed = asyncio.Event()
        await self._closed.wait()

    async def _shutdown(self, transport: Transport | None) -> None:
        self.state = State.CLOSING
        # Before the runs are ended: lets waiters (broadcast subscriptions) see
        # is_shutdown now instead of sleeping into the grace-period cancel.
        signals.emit(signals.session_closing, self.app, session=self)
        self._disarm_idle_timer()
        await self.sender.stop()
        close = self._close
        if close is not None and transport is not None:
            self.close_code = close.code
            closing = asyncio.ensure_future(transport.close(close.code, close.reason))
            try:
                async with asyncio.timeout(CLOSE_SEND_TIMEOUT):
                    await asyncio.shield(closing)
                close.delivered = True
            except TimeoutError:
                close.pending = closing  # serve() gives it a little longer
            except (OSError, RuntimeError) as exc:
                log.debug("close frame not sent: %r", exc)
            close.sent.set()
        for renderer in self.renderers.values():
            self.runs.drop_queued(renderer)
        runs = list(self.runs)
        cancel_event_triggered(runs)
        self.reads.fail(lambda: self.app.disconnected("the connection closed"))
        await end_runs(runs, self.app.shutdown_grace)
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.shutdown_grace)
        self.app.registry.discard(self, self._lost)
        self.app.session_closed(self)
        for renderer_id in self.renderers:  # balance renderer_joined for tabs still open
            signals.emit(signals.renderer_left, self.app, session=self, renderer_id=renderer_id)
        self.state = State.CLOSED
        if self._closed is not None:
            self._closed.set()
        signals.emit(signals.session_disconnected, self.app, session=self, code=self.close_code)

    # -- inbound -------------------------------------------------------------------------

    async def on_frame(self, data: str | bytes) -> None:
        now = self.loop.time()
        self.sender.heard_from_client(now)  # the client is alive (send watchdog)
        limit = self.config.max_message_size
        size = protocol.utf8_size(data, limit)
        self.bytes_received += size
        if size > limit:
            self.request_close(CloseCode.MESSAGE_TOO_BIG, f"frame of {size} bytes exceeds {limit}")
            return
        # Parse work is bounded per second: past it, wait (and so read no more
        # from this socket meanwhile) instead of parsing at the client's pace.
        delay = self._volume.borrow(now, protocol.parsed_size(data))
        if delay > 0:
            await asyncio.sleep(delay)
            now = self.loop.time()
        try:
            messages, errors = protocol.parse_frame(data, max_batch=self.config.max_batch)
        except ProtocolError as error:
            if self._spend(now, 1):
                self.send_error(error)
            return
        if not self._spend(now, self._cost(messages, errors)):
            return
        for problem in errors:
            self.send_error(problem)
        hooks = self.app.has_message_hooks
        for message in messages:
            if hooks and not await self._run_message_hooks(message):
                return
            self.dispatch(message)

    def _cost(self, messages: list[Message], errors: list[ProtocolError]) -> int:
        """Tokens a frame spends: one a message, valid or not, before anything is
        answered. The exception is the answer to a get_prop we asked: our request
        granted it, once, to the tab we asked."""
        cost = len(errors)
        free: set[str] = set()
        for message in messages:
            answer = message.type == protocol.GET_PROPS_RESPONSE and message.request_id
            if answer and answer not in free and self.reads.solicited(answer,
                                                                      message.renderer_id):
                free.add(answer)
            else:
                cost += 1
        return cost

    def _spend(self, now: float, tokens: int) -> bool:
        if tokens == 0 or self._flood.take(now, tokens):
            return True
        self.request_close(CloseCode.FLOOD, "too many messages per second")
        return False

    async def _run_message_hooks(self, message: Message) -> bool:
        raw = message.raw if message.raw is not None else {"type": message.type}
        verdict = await self.app.check_message(self.connection, raw)
        if verdict is None:
            return True
        code, reason = verdict
        if code == 0:  # a hook may refuse one message without closing
            self.send_error(ProtocolError(ErrorCode.REJECTED, reason,
                                          renderer_id=message.renderer_id,
                                          request_id=message.request_id))
            return False
        self.request_close(code, reason)
        signals.emit(signals.connection_rejected, self.app, reason="hook", code=code,
                     detail=reason, session=self)
        return False

    def dispatch(self, message: Message) -> None:
        kind = message.type
        self.messages_received += 1
        if kind == protocol.HEARTBEAT:
            # Not activity: a client that only says it is alive is idle.
            self.push(protocol.HEARTBEAT_ACK_FRAME, activity=False, control=True)
            self._ack_client(force=True)
            return
        if kind in _CONTROL:
            self._control(message)
            return
        if message.seq is not None and self.token is not None:
            if message.seq <= self.client_seq:
                return  # sent again after a resume, and we had it: once only
            self.client_seq = message.seq
            self._ack_client()
        # Only a message that acted is activity: a no-op (leaving a tab that
        # is not there, an unknown answer) keeps nobody's session alive.
        acted = False
        if kind == protocol.RENDERER_LEFT:
            acted = self.renderer_left(message.renderer_id)
        else:
            known = message.renderer_id in self.renderers
            renderer = self.renderer(message.renderer_id)
            if renderer is None:
                return
            acted = not known
            if kind == protocol.CALLBACK_REQUEST:
                acted = self.runs.start_request(renderer, message) or acted
            elif kind == protocol.GET_PROPS_RESPONSE:
                if self.reads.resolve(renderer, message.request_id, message.payload,
                                      message.path_resolved):
                    acted = True
                else:
                    self.send_error(ProtocolError(
                        ErrorCode.UNKNOWN_REQUEST,
                        "no get_props request of this id is waiting for an answer",
                        renderer_id=renderer.id, request_id=message.request_id))
            # RENDERER_JOINED: first contact already handled by self.renderer()
        if acted:
            self._idle.touch(self.loop.time())

    def _control(self, message: Message) -> None:
        if message.type == protocol.HELLO:
            if message.payload.get("resume"):
                self._become_resumable()
        elif message.type == protocol.ACK:
            log_ = self.sender.log
            if log_ is not None and message.payload["seq"] <= self.sender.seq:
                log_.ack(message.payload["seq"])
        else:  # RESUME: only a connection's first message may resume (registry.accept)
            self.send_error(ProtocolError(ErrorCode.BAD_MESSAGE,
                                          "'resume' must be a connection's first message"))

    def _ack_client(self, force: bool = False) -> None:
        """Tell the client what we received, so it can forget it: every
        ACK_EVERY messages, and with each heartbeat."""
        unacked = self.client_seq - self._client_acked
        if unacked >= ACK_EVERY or (force and unacked > 0):
            self._client_acked = self.client_seq
            self.push(protocol.ack_frame(self.client_seq), activity=False, control=True)

    # -- tabs ----------------------------------------------------------------------------

    def renderer(self, renderer_id: str) -> Renderer | None:
        """The renderer with this id; its first contact starts its persistent callbacks."""
        renderer = self.renderers.get(renderer_id)
        if renderer is not None:
            return renderer
        limit = self.config.max_renderers
        if len(self.renderers) >= limit:
            self.send_error(ProtocolError(ErrorCode.TOO_MANY_RENDERERS,
                                          f"more than {limit} tabs on one connection",
                                          renderer_id=renderer_id))
            return None
        # A new tab starts every persistent callback: it costs a token each.
        starts = self.runs.persistent_count
        if starts and not self._spend(self.loop.time(), starts):
            return None
        if not self.retain(RECORD_BYTES + len(renderer_id)):
            return None
        renderer = self.renderers[renderer_id] = Renderer(renderer_id)
        signals.emit(signals.renderer_joined, self.app, session=self, renderer_id=renderer_id)
        self.runs.tab_joined(renderer)
        return renderer

    def renderer_left(self, renderer_id: str) -> bool:
        """A tab went away: its callbacks end. False when there was no such tab."""
        renderer = self.renderers.pop(renderer_id, None)
        if renderer is None:
            return False
        self.release(RECORD_BYTES + len(renderer_id))
        renderer.left = True
        self.runs.drop_queued(renderer)
        cancel_event_triggered(list(renderer.runs))
        self.reads.fail(lambda: self.app.disconnected("the tab went away"), renderer)
        signals.emit(signals.renderer_left, self.app, session=self, renderer_id=renderer_id)
        if renderer.runs:
            self._in_background(end_runs(list(renderer.runs), self.config.shutdown_grace))
        return True

    def handle_for(self, renderer: Renderer, run: Any = None) -> WebSocketHandle:
        """``ctx.websocket`` for a callback ``run`` for ``renderer``."""
        return WebSocketHandle(self, renderer, run)

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        if self._background is None:
            self._background = set()
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- budgets -------------------------------------------------------------------------

    def retain(self, size: int) -> bool:
        """Charge the retained budget; over it, the connection closes with 4010."""
        if self.retained.charge(size):
            return True
        self.request_close(CloseCode.OVER_BUDGET,
                           f"over the connection's budget of {self.retained.limit} bytes")
        return False

    def release(self, size: int) -> None:
        self.retained.release(size)

    # -- outbound ------------------------------------------------------------------------

    def push(self, frame: bytes, *, activity: bool = True, control: bool = False) -> None:
        """Queue a frame that is never coalesced (responses, requests, errors);
        ``control``: about the connection itself (no sequence number, no replay)."""
        if activity:
            self._idle.touch(self.loop.time())
        try:
            if control:
                self.sender.outbox.push_control(frame)
            else:
                self.sender.outbox.push(frame)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def send_error(self, error: ProtocolError) -> None:
        self.push(protocol.error_frame(error), activity=False)

    def prepare_prop(self, component_id: str, prop: str, value: Any) -> tuple[Any, bool]:
        return self.app.prepare_prop(component_id, prop, value)

    def encode_prop(self, renderer: Renderer, component_id: str, prop: str,
                    value: Any) -> bytes:
        """The ``set_props`` frame of one value for a tab (thread-safe)."""
        return protocol.set_props_frame(renderer.id, component_id, {prop: value})

    def push_prop(self, renderer: Renderer, component_id: str, prop: str, value: Any,
                  is_patch: bool, owner: Any = None) -> None:
        """Queue one ``set_props`` value for a tab (coalesced with older ones);
        ``owner``: the run pushing it (nothing once it was superseded)."""
        if self.closed or renderer.left or _muted(owner):
            return
        self.push_prop_frame(renderer, component_id, prop,
                             self.encode_prop(renderer, component_id, prop, value), is_patch,
                             owner)

    def push_prop_frame(self, renderer: Renderer, component_id: str, prop: str, frame: bytes,
                        is_patch: bool, owner: Any = None) -> None:
        """Queue a ready ``set_props`` frame (:meth:`encode_prop`) for a tab."""
        if self.closed or renderer.left or _muted(owner):
            return
        self.props_pushed += 1
        self._idle.touch(self.loop.time())
        try:
            self.sender.outbox.push_prop((renderer.id, component_id, prop), frame,
                                         is_patch=is_patch, owner=owner)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def discard_pushes(self, owner: Any) -> int:
        """Take back what ``owner`` (a superseded run) queued and is not sent yet."""
        return self.sender.outbox.discard_owner(owner)

    # -- events to the page's JavaScript --------------------------------------------------

    def encode_event(self, renderer: Renderer, name: str, data: Any) -> bytes:
        """The ``event`` frame of one event for a tab (thread-safe)."""
        return protocol.event_frame_from_payload(renderer.id, protocol.event_payload(name, data))

    def push_event_frame(self, renderer: Renderer, frame: bytes, owner: Any = None) -> bool:
        """Queue a ready ``event`` frame for a tab. False when it did not fit the
        event budget: it is dropped and the tab is told (``events_lost``)."""
        if self.closed or renderer.left or _muted(owner):
            return False
        self._idle.touch(self.loop.time())
        if self.sender.outbox.push_event(frame, self.config.max_pending_event_bytes,
                                         owner=owner):
            self.events_sent += 1
            return True
        self._events_lost(renderer)
        return False

    def push_encoded_event(self, renderer: Renderer | None, payload: bytes) -> None:
        """Queue an event whose payload (``protocol.event_payload``) is ready JSON,
        for one tab or (``renderer=None``) every tab of this session: broadcast
        encodes it once for every session."""
        if self.closed:
            return
        targets = list(self.renderers.values()) if renderer is None else [renderer]
        for target in targets:
            if not target.left:
                self.push_event_frame(target,
                                      protocol.event_frame_from_payload(target.id, payload))

    def _events_lost(self, renderer: Renderer) -> None:
        """An event to ``renderer`` was dropped: tell it. The notice carries the
        tab's running total and coalesces (a newer one replaces a waiting one),
        so however many are lost it costs one frame."""
        renderer.events_lost += 1
        self.events_dropped += 1
        if renderer.events_lost == 1:
            log.warning("events to a tab exceed websocket_max_pending_event_bytes (%d): "
                        "dropping them and telling the tab", self.config.max_pending_event_bytes)
        try:
            self.sender.outbox.push_prop((renderer.id, "", protocol.EVENTS_LOST),
                                         protocol.events_lost_frame(renderer.id,
                                                                    renderer.events_lost),
                                         is_patch=False)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def push_encoded_prop(self, renderer: Renderer | None, component_id: str, prop: str,
                          payload: bytes, *, is_patch: bool) -> None:
        """Queue a ``set_props`` whose payload (``protocol.set_props_payload``) is ready JSON.

        Broadcast uses it so one encoding serves every session; ``renderer=None``
        means every tab of this session. Coalesces exactly like :meth:`push_prop`.
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
                    self.sender.outbox.push_prop((target.id, component_id, prop), frame,
                                                 is_patch=is_patch)
        except OutboxOverflow as overflow:
            self.request_close(CloseCode.SLOW_CONSUMER, str(overflow))

    def _stalled(self, why: str) -> None:
        if not self.closed:
            self.request_close(CloseCode.SLOW_CONSUMER, why)

    async def get_prop(self, renderer: Renderer, component_id: str, prop: str,
                       timeout: float, path: list[str | int] | None = None) -> Any:
        """Ask ``renderer`` for one property's current value, or (``path``) for
        one item inside it."""
        if self.closed or renderer.left:
            raise self.app.disconnected("the connection is closed")
        if not self.retain(RECORD_BYTES):
            raise self.app.disconnected("the connection is over its budget")
        request_id, future = self.reads.ask(renderer)
        self.push(protocol.get_props_request_frame(renderer.id, request_id, component_id, [prop],
                                                   path))
        try:
            async with asyncio.timeout(timeout):
                values, path_resolved = await future
        except TimeoutError:
            raise TimeoutError(
                f"get_prop({component_id!r}, {prop!r}): no answer within {timeout} s"
            ) from None
        finally:
            self.reads.forget(request_id)
            self.release(RECORD_BYTES)
        value = values.get(prop) if isinstance(values, dict) else None
        if path and not path_resolved:
            # A renderer that ignores `path` (Dash 4.4's) sent the whole value.
            value = protocol.resolve_prop_path(value, path)
        return value

    # -- inactivity ----------------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        # One deadline, re-armed for the remainder, not a polling loop; on the
        # loop's shared timers (deadlines.py): a timer per session would cost
        # ~220-590 bytes on each of thousands of idle sessions.
        self._disarm_idle_timer()
        now = self.loop.time()
        remaining = self._idle.remaining(now)
        if remaining is None or self.closed:
            return
        if remaining <= 0:
            self.request_close(CloseCode.REJECTED, "Inactivity timeout")
        else:
            resolution = min(IDLE_RESOLUTION, self._idle.timeout / 20)
            self._idle_slot = deadlines(self.loop).add(self, now + remaining, resolution)

    deadline_due = _arm_idle_timer  # called by the shared deadlines

    def _disarm_idle_timer(self) -> None:
        if self._idle_slot is not None:
            deadlines(self.loop).remove(self, self._idle_slot)
            self._idle_slot = None

    def __repr__(self) -> str:
        return (f"<Session {self.state.value} renderers={len(self.renderers)} "
                f"runs={len(self.runs)}>")


def _muted(owner: Any) -> bool:
    """The run ``owner`` was superseded: what it pushes goes nowhere."""
    return owner is not None and bool(getattr(owner, "superseded", False))


async def _finish_close(pending: asyncio.Future[None]) -> None:
    """Give a close frame that could not be written yet ``CLOSE_TIMEOUT`` more
    seconds after its session ended. Some servers (uvicorn, granian) take a
    frame only once the socket drains: a client that stopped reading and reads
    again then finds the close code, not a bare disconnect."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await asyncio.shield(pending)
    except TimeoutError:
        pending.cancel()
    except (OSError, RuntimeError) as exc:
        log.debug("close frame not sent: %r", exc)


def _keep(task: asyncio.Task[None]) -> None:
    """Hold a background task until it ends (the loop keeps only weak references)."""
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)


async def _shielded(coro: Any) -> None:
    """Run ``coro`` to its end even if the calling task is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
    task.result()
