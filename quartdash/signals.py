"""blinker signals, the Quart way: observe sessions and callbacks in production.

Every signal is sent with the :class:`~quartdash.hosting.LiveApp` (one hosted
Dash app) as sender, so ``signal.connect(receiver, sender=app.live)`` narrows to
one app. Receivers run synchronously on the event loop: keep them quick.
A receiver that raises is logged and does not disturb the session; an
``async def`` receiver is started as a task.

The ``callback_*`` and ``persistent_*`` signals cover callbacks run over the
WebSocket; HTTP callbacks are ordinary Quart requests (use Quart's
``request_started`` / ``request_finished``). docs/signals.md has an example.

=========================  ===============================================
signal                     keyword arguments
=========================  ===============================================
``session_connected``      ``session``
``session_closing``        ``session`` (the session is shutting down: sent
                           before its callbacks are ended)
``session_disconnected``   ``session``, ``code`` (None: the client left)
``renderer_joined``        ``session``, ``renderer_id``
``renderer_left``          ``session``, ``renderer_id`` (also for every tab
                           still open when the session ends)
``callback_started``       ``session``, ``renderer_id``, ``callback_id``
``callback_finished``      ``session``, ``renderer_id``, ``callback_id``,
                           ``duration`` (s), ``status`` (ok/prevent_update/
                           cancelled)
``callback_failed``        ``session``, ``renderer_id``, ``callback_id``,
                           ``duration``, ``error`` (the exception),
                           ``persistent`` (bool)
``persistent_started``     ``session``, ``renderer_id``, ``callback_id``
``persistent_stopped``     ``session``, ``renderer_id``, ``callback_id``,
                           ``duration``
``session_detached``       ``session`` (its socket dropped; it waits for the
                           client to resume it)
``session_resumed``        ``session``, ``replayed`` (messages sent again)
``resume_failed``          ``session`` (the fresh one that replaces it),
                           ``reason`` (docs/protocol.md: expired, unknown...)
``connection_rejected``    ``reason`` (host/origin/hook/limit), ``code``,
                           ``detail``, ``session`` (None before accept)
=========================  ===============================================

Pairing: each ``callback_started`` is followed by exactly one
``callback_finished`` or ``callback_failed``; each ``persistent_started`` by
exactly one ``persistent_stopped`` (preceded by ``callback_failed`` with
``persistent=True`` when it raised); each ``session_connected`` by one
``session_disconnected``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from blinker import NamedSignal, Namespace

log = logging.getLogger("quartdash.signals")

_signals = Namespace()

session_connected = _signals.signal("quartdash.session-connected")
session_closing = _signals.signal("quartdash.session-closing")
session_disconnected = _signals.signal("quartdash.session-disconnected")
renderer_joined = _signals.signal("quartdash.renderer-joined")
renderer_left = _signals.signal("quartdash.renderer-left")
callback_started = _signals.signal("quartdash.callback-started")
callback_finished = _signals.signal("quartdash.callback-finished")
callback_failed = _signals.signal("quartdash.callback-failed")
persistent_started = _signals.signal("quartdash.persistent-started")
persistent_stopped = _signals.signal("quartdash.persistent-stopped")
connection_rejected = _signals.signal("quartdash.connection-rejected")
session_detached = _signals.signal("quartdash.session-detached")
session_resumed = _signals.signal("quartdash.session-resumed")
resume_failed = _signals.signal("quartdash.resume-failed")


def emit(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` only when someone listens (the hot path stays free).

    Each receiver is called on its own: one that raises is logged (logger
    ``quartdash.signals``) and neither the session nor the other receivers
    notice. A coroutine receiver is started as a task, not awaited.
    """
    if not signal.receivers or signal.is_muted:
        return
    for receiver in signal.receivers_for(sender):
        try:
            if inspect.iscoroutinefunction(receiver):
                task = asyncio.get_running_loop().create_task(receiver(sender, **kwargs))
                _tasks.add(task)
                task.add_done_callback(_task_done)
            else:
                receiver(sender, **kwargs)
        except Exception:
            log.exception("a receiver of %s raised: %r", signal.name, receiver)


_tasks: set[asyncio.Task[Any]] = set()  # running coroutine receivers (strong refs)


def _task_done(task: asyncio.Task[Any]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("a coroutine signal receiver raised", exc_info=task.exception())
