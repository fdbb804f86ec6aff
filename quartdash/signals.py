"""blinker signals, the Quart way: observe sessions and callbacks in production.

Every signal is sent with the :class:`~quartdash.hosting.Host` (one hosted
Dash app) as sender, so ``signal.connect(receiver, sender=host)`` narrows to
one app. Receivers run synchronously on the event loop: keep them quick.

=========================  ===============================================
signal                     keyword arguments
=========================  ===============================================
``session_connected``      ``broker``
``session_disconnected``   ``broker``, ``code`` (None: the client left)
``renderer_joined``        ``broker``, ``renderer_id``
``renderer_left``          ``broker``, ``renderer_id``
``callback_started``       ``broker``, ``renderer_id``, ``callback_id``
``callback_finished``      ``broker``, ``renderer_id``, ``callback_id``,
                           ``duration`` (s), ``status`` (ok/prevent_update)
``callback_failed``        ``broker``, ``renderer_id``, ``callback_id``,
                           ``duration``, ``error`` (the exception)
``persistent_started``     ``broker``, ``renderer_id``, ``callback_id``
``persistent_stopped``     ``broker``, ``renderer_id``, ``callback_id``,
                           ``duration``
``connection_rejected``    ``reason`` (origin/hook/limit), ``code``,
                           ``detail``, ``broker`` (None before accept)
=========================  ===============================================
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace

_signals = Namespace()

session_connected = _signals.signal("quartdash.session-connected")
session_disconnected = _signals.signal("quartdash.session-disconnected")
renderer_joined = _signals.signal("quartdash.renderer-joined")
renderer_left = _signals.signal("quartdash.renderer-left")
callback_started = _signals.signal("quartdash.callback-started")
callback_finished = _signals.signal("quartdash.callback-finished")
callback_failed = _signals.signal("quartdash.callback-failed")
persistent_started = _signals.signal("quartdash.persistent-started")
persistent_stopped = _signals.signal("quartdash.persistent-stopped")
connection_rejected = _signals.signal("quartdash.connection-rejected")


def emit(signal: Any, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` only when someone listens (the hot path stays free)."""
    if signal.receivers:
        signal.send(sender, **kwargs)
