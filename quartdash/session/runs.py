"""The callbacks a session runs: one asyncio task each, grouped by tab.

* an event-triggered callback runs once per ``callback_request``;
* a persistent callback runs once per tab, started on the tab's first
  contact; a request for one that is already running starts no second one;
* on the way out, event-triggered runs get ``CancelledError`` while
  persistent ones (and one that called ``ws.close()``) see ``is_shutdown``
  and get a grace period to clean up (docs/persistent-callbacks.md).

Re-triggering: an event-triggered callback requested again by the same tab
while its previous run (for the same outputs) still runs follows the
callback's ``on_retrigger``:

* ``cancel`` (the default): the newest wins. The older run is *superseded*:
  its request is answered ``prevent_update`` at once (the renderer settles
  it; it already keeps only the newest request's result), what it queued
  and is not sent yet is taken back from the outbox, anything it pushes
  from now on is dropped, and its task is cancelled (``CancelledError`` at
  its current ``await``, so it can clean up);
* ``queue``: the new request waits; runs go one after another, in order;
* ``parallel``: every request runs at once (quartdash before re-triggering).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from .. import signals
from ..config import WebSocketConfig
from ..types import SessionApp
from ..wire import protocol
from ..wire.protocol import ErrorCode, Message, ProtocolError, clip
from ..wire.rules import TokenBucket
from .records import RECORD_BYTES, Renderer, Run

__all__ = ["RunContext", "Runs"]

log = logging.getLogger("quartdash.session")

# Tracebacks of failing callbacks logged per session: LOG_RATE a second, LOG_BURST at once.
LOG_RATE = 1.0
LOG_BURST = 5.0

_EMPTY_REQUEST: dict[str, list[Any]] = {
    "outputs": [], "inputs": [], "state": [], "changedPropIds": []}


class RunContext(Protocol):
    """What :class:`Runs` needs from its session."""

    @property
    def app(self) -> SessionApp: ...

    @property
    def config(self) -> WebSocketConfig: ...

    @property
    def closed(self) -> bool: ...

    @property
    def connection(self) -> Mapping[str, Any]: ...

    def push(self, frame: bytes, *, activity: bool = True) -> None: ...

    def send_error(self, error: ProtocolError) -> None: ...

    def retain(self, size: int) -> bool: ...

    def release(self, size: int) -> None: ...

    def handle_for(self, renderer: Renderer, run: Any = None) -> Any: ...

    def discard_pushes(self, owner: Any) -> int: ...


class Runs:
    """Every callback task of one session, keyed by request id (or a made-up one)."""

    __slots__ = ("_ending", "_ids", "_log_budget", "_persistent_ids", "_session", "by_key",
                 "superseded", "unlogged_failures")

    def __init__(self, session: RunContext) -> None:
        self._session = session
        self._persistent_ids = list(session.app.persistent_callback_ids())
        self._ids = itertools.count(1)
        self.by_key: dict[str, Run] = {}
        # Superseded runs still ending (cancelled, their requests answered).
        self._ending: set[Run] = set()
        self.superseded = 0  # runs a newer request of theirs replaced
        # Tracebacks a client can provoke are logged at a bounded rate.
        self._log_budget = TokenBucket(LOG_RATE, LOG_BURST, asyncio.get_running_loop().time())
        self.unlogged_failures = 0

    def __len__(self) -> int:
        return len(self.by_key)

    def __iter__(self) -> Iterator[Run]:
        """Every run still going: those serving requests, and superseded ones
        still finishing (a shutdown waits for their cleanup too)."""
        return iter(list(dict.fromkeys([*self.by_key.values(), *self._ending])))

    def running(self, request_id: str) -> bool:
        return request_id in self.by_key

    # -- starting ---------------------------------------------------------------------

    def tab_joined(self, renderer: Renderer) -> None:
        """A tab's first contact: its persistent callbacks start, once."""
        for callback_id in self._persistent_ids:
            self._start_persistent(renderer, callback_id, [])

    @property
    def persistent_count(self) -> int:
        """How many persistent callbacks each new tab starts."""
        return len(self._persistent_ids)

    def start_request(self, renderer: Renderer, message: Message) -> bool:
        """A ``callback_request``: checked against the app, then run (True) or
        refused (False)."""
        session = self._session
        request_id = message.request_id
        assert request_id is not None
        payload = message.payload
        callback_id = payload["output"]

        def refuse(code: ErrorCode, why: str) -> bool:
            session.push(protocol.callback_error_frame(renderer.id, request_id, why, code))
            return False

        if request_id in self.by_key:
            session.send_error(ProtocolError(ErrorCode.DUPLICATE_REQUEST,
                                             "this request is already running",
                                             renderer_id=renderer.id, request_id=request_id))
            return False
        spec = session.app.callback_info(callback_id)
        if spec is None:
            return refuse(ErrorCode.UNKNOWN_CALLBACK,
                          f"no callback {clip(callback_id)} in this app")
        if not (session.config.enabled or spec.websocket):
            return refuse(ErrorCode.NOT_WEBSOCKET,
                          f"callback {clip(callback_id)} is not WebSocket-enabled: pass "
                          "websocket=True to the callback or websocket_callbacks=True to the app")
        # Checked before the callback runs: a request that does not fit its
        # callback is the client's error, not a callback failure.
        problem = session.app.request_problem(callback_id, payload)
        if problem is not None:
            return refuse(ErrorCode.BAD_MESSAGE, f"callback {clip(callback_id)}: {problem}")
        if callback_id in self._persistent_ids:
            running = renderer.persistent.get(callback_id)
            if running is not None:
                self._rerequest(running, request_id)  # no second instance
                return False
            return self._start_persistent(renderer, callback_id, [request_id], payload,
                                          message.size)
        limit = session.config.max_concurrent_callbacks
        if len(self.by_key) >= limit:
            return refuse(ErrorCode.TOO_MANY_CALLBACKS,
                          f"more than {limit} callbacks running on this connection")
        run = Run(renderer, callback_id, False, [request_id])
        if not self._charge(run, message.size):
            return False
        if spec.retrigger != "parallel":
            run.group = protocol.retrigger_key(payload)
            current = renderer.active.get(run.group)
            if current is not None:
                if spec.retrigger == "queue":
                    # Waits for the runs before it (a queued request counts
                    # against the connection's callback limit like a running one).
                    run.payload = payload
                    renderer.queued.setdefault(run.group, deque()).append(run)
                    renderer.runs.add(run)
                    self.by_key[request_id] = run
                    return True
                self._supersede(current)
            renderer.active[run.group] = run
        self._launch(run, request_id, payload)
        return True

    def _supersede(self, run: Run) -> None:
        """The newest wins: ``run`` gives way to a newer request of the same
        callback for the same tab (see the module docstring)."""
        session = self._session
        run.superseded = True
        self.superseded += 1
        session.discard_pushes(run)
        for request_id in run.request_ids:
            self.by_key.pop(request_id, None)
            if not (session.closed or run.renderer.left):
                session.push(protocol.prevent_update_frame(run.renderer.id, request_id))
        run.request_ids = []
        if run.group is not None and run.renderer.active.get(run.group) is run:
            del run.renderer.active[run.group]
        if run.task is not None and not run.task.done():
            self._ending.add(run)
            run.task.cancel()

    def _next_in_queue(self, run: Run) -> None:
        """``run`` ended: hand its group to the next queued request, if any."""
        renderer, group = run.renderer, run.group
        if group is None or renderer.active.get(group) is not run:
            return
        del renderer.active[group]
        waiting = renderer.queued.get(group)
        if not waiting:
            return
        if self._session.closed or renderer.left:
            self.drop_queued(renderer)
            return
        following = waiting.popleft()
        if not waiting:
            del renderer.queued[group]
        payload, following.payload = following.payload or {}, None
        renderer.active[group] = following
        self._launch(following, following.request_ids[0], payload)

    def drop_queued(self, renderer: Renderer) -> None:
        """The tab went away (or the session ends): its queued requests never run."""
        for waiting in renderer.queued.values():
            for run in waiting:
                self.forget(run)
        renderer.queued.clear()

    def _charge(self, run: Run, payload_size: int) -> bool:
        size = RECORD_BYTES + payload_size + sum(len(r) for r in run.request_ids)
        if not self._session.retain(size):
            return False
        run.retained = size
        return True

    def _rerequest(self, run: Run, request_id: str) -> None:
        """A request for a persistent callback that is already running (a renderer
        re-triggers them after every reconnect). Only the newest request waits for
        the run's end; the one it supersedes is answered now, so a client cannot
        pile up request ids."""
        session = self._session
        if not session.retain(len(request_id)):
            return
        run.retained += len(request_id)
        if run.request_ids and run.request_ids[-1] in self.by_key:
            older = run.request_ids.pop()
            del self.by_key[older]
            run.retained -= len(older)
            session.release(len(older))
            session.push(protocol.prevent_update_frame(run.renderer.id, older))
        run.request_ids.append(request_id)
        self.by_key[request_id] = run

    def _start_persistent(self, renderer: Renderer, callback_id: str, request_ids: list[str],
                          payload: dict[str, Any] | None = None, payload_size: int = 0) -> bool:
        if len(self.by_key) >= self._session.config.max_concurrent_callbacks:
            if self._log_budget.take(asyncio.get_running_loop().time()):
                log.warning("persistent callback %s not started: connection at its "
                            "callback limit", callback_id)
            return False
        run = Run(renderer, callback_id, True, request_ids)
        if not self._charge(run, payload_size):
            return False
        renderer.persistent[callback_id] = run
        key = request_ids[0] if request_ids else f"persistent-{next(self._ids)}"
        self._launch(run, key, payload or {"output": callback_id, **_EMPTY_REQUEST})
        return True

    def _launch(self, run: Run, key: str, payload: dict[str, Any]) -> None:
        self.by_key[key] = run
        run.renderer.runs.add(run)
        run.task = asyncio.create_task(self._execute(run, payload), name=f"quartdash:{key}")
        run.task.add_done_callback(lambda _: self._ended(run))

    def _ended(self, run: Run) -> None:
        """A run's task is done. Normally ``_execute`` already forgot it; but a
        task cancelled before its first step (superseded, or its tab gone, in
        the very frame that started it) never runs its body at all."""
        self.forget(run)
        self._next_in_queue(run)

    # -- running ----------------------------------------------------------------------

    async def _execute(self, run: Run, payload: dict[str, Any]) -> None:
        session, app = self._session, self._session.app
        renderer = run.renderer
        loop = asyncio.get_running_loop()
        started = loop.time()
        started_signal = signals.persistent_started if run.persistent else signals.callback_started
        signals.emit(started_signal, app, session=session, renderer_id=renderer.id,
                     callback_id=run.callback_id)
        frame_for: Any = None  # request id -> the response frame, once settled
        status = "cancelled"  # unless the callback returns or raises an Exception
        try:
            # Inside the try: whatever fails here still answers the request
            # and forgets the run (a task that died first would leak both).
            data = await app.run_callback(payload, session.handle_for(renderer, run),
                                          session.connection)
            if data is None:
                status = "prevent_update"
                frame_for = lambda rid: protocol.prevent_update_frame(renderer.id, rid)  # noqa: E731
            else:
                status = "ok"
                frame_for = lambda rid: protocol.callback_ok_frame(renderer.id, rid, data)  # noqa: E731
        except Exception as error:
            if self._log_budget.take(loop.time()):
                log.error("WebSocket callback %s failed", run.callback_id, exc_info=error)
            else:
                self.unlogged_failures += 1
            message = app.failure_message(error)
            frame_for = lambda rid: protocol.callback_error_frame(renderer.id, rid, message)  # noqa: E731
            signals.emit(signals.callback_failed, app, session=session,
                         renderer_id=renderer.id, callback_id=run.callback_id,
                         duration=loop.time() - started, error=error,
                         persistent=run.persistent)
            status = "error"
        finally:
            # Every start is paired with exactly one end signal, cancellation included.
            self.forget(run)
            self._next_in_queue(run)
            duration = loop.time() - started
            if run.persistent:
                signals.emit(signals.persistent_stopped, app, session=session,
                             renderer_id=renderer.id, callback_id=run.callback_id,
                             duration=duration)
            elif status != "error":
                signals.emit(signals.callback_finished, app, session=session,
                             renderer_id=renderer.id, callback_id=run.callback_id,
                             duration=duration, status=status)
        if frame_for is not None and not (session.closed or renderer.left):
            for request_id in run.request_ids:
                session.push(frame_for(request_id))

    def forget(self, run: Run) -> None:
        self._ending.discard(run)
        self._session.release(run.retained)
        run.retained = 0
        for request_id in run.request_ids:
            self.by_key.pop(request_id, None)
        for key, value in list(self.by_key.items()):
            if value is run:
                del self.by_key[key]
        run.renderer.runs.discard(run)
        if run.persistent and run.renderer.persistent.get(run.callback_id) is run:
            del run.renderer.persistent[run.callback_id]

    # -- ending -----------------------------------------------------------------------

    def mark_lingering(self, task: asyncio.Task[Any] | None) -> None:
        """The run of ``task`` called ``ws.close()``: it may finish its cleanup."""
        for run in self.by_key.values():
            if run.task is task:
                run.lingering = True


def cancel_event_triggered(runs: list[Run]) -> None:
    """Cancel the event-triggered runs now (persistent and lingering ones keep
    their grace). Called *before* pending get_prop futures fail, so a callback
    waiting in get_prop sees the ``CancelledError`` the seed promises rather
    than ``WebsocketDisconnected``."""
    for run in runs:
        if run.task is not None and not (run.persistent or run.lingering):
            run.task.cancel()


async def end_runs(runs: list[Run], grace: float) -> None:
    """End runs the way the seed promises.

    Event-triggered callbacks got ``CancelledError`` from
    :func:`cancel_event_triggered` (once: a second cancel would cut their
    cleanup short). Persistent ones (and one that called ``ws.close()``) see
    ``is_shutdown`` and get ``grace`` seconds to leave their loop and clean
    up, then are cancelled.
    """
    tasks = [run.task for run in runs if run.task is not None and not run.task.done()]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=grace)
