"""The interface a broadcast backend implements (memory://, redis://).

A backend moves envelopes between processes, keeps retained ``set_props``
state and presence (:mod:`~quartdash.broadcast.presence`); the hub above it
(:mod:`~quartdash.broadcast.hub`) knows the local audience. It calls back into the hub with what it
receives: ``deliver(channel, envelope)``, ``on_subscribed(channel)`` once a
channel is listened to, and ``on_retained(channel, state)`` with the
retained state read after (re)subscribing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .envelope import Envelope

__all__ = ["RETAIN_CHANNELS", "RETAIN_KEYS", "RETAIN_TTL", "Backend", "Deliver",
           "OnRetained", "OnSubscribed", "Retained"]

Retained = dict[tuple[str, str], bytes]
"""Retained ``set_props`` state of one channel: (component id, prop) -> payload JSON."""

# Retained state is bounded: topic names and component ids may follow user
# input (rooms, documents), and nobody may be listening any more.
RETAIN_TTL = 24 * 3600.0
"""Seconds retained state outlives the last write to its channel."""
RETAIN_KEYS = 1000
"""Properties retained per channel; more forget the oldest written."""
RETAIN_CHANNELS = 10_000
"""Channels with retained state per process (memory backend); more forget the
least recently written."""

Deliver = Callable[[str, Envelope], None]
OnSubscribed = Callable[[str], None]
OnRetained = Callable[[str, Retained], None]


class Backend(Protocol):
    """What :class:`~quartdash.broadcast.hub.Broadcast` needs from a backend."""

    name: str
    stats: dict[str, int]
    """``published``, ``dropped`` and ``reconnects`` counters at least."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None:
        """Begin work on the running event loop."""
        ...

    async def publish(self, channel: str, envelope: Envelope, *, strict: bool = False) -> None:
        """Send to every process listening on ``channel`` (this one included);
        never blocks on subscribers. A failure drops the envelope (counted), or
        with ``strict`` raises ``ConnectionError``."""
        ...

    def want(self, channel: str) -> None:
        """Start listening to ``channel`` (idempotent)."""
        ...

    def unwant(self, channel: str) -> None:
        """Stop listening to ``channel``."""
        ...

    async def ready(self, channel: str, timeout: float) -> None:
        """Return once ``channel`` is listened to (bounded by ``timeout``)."""
        ...

    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        """Take or renew the lease ``name`` for ``token`` (``run_exclusive``):
        True held, False held by another, None unknown (backend down)."""
        ...

    async def release(self, name: str, token: str) -> None: ...

    # -- presence: one hash of entries per topic, and each worker's deadline --------
    # ``key``: the topic's presence key; ``field``: ``<worker id>/<...>``;
    # ``value``: the entry's JSON; events are JSON values published on
    # ``channel`` as topic messages. Each raises ``ConnectionError`` when the
    # backend cannot be reached.

    presence_ttl: float | None
    """Seconds a worker's entries outlive its last heartbeat (None: in-process,
    entries live exactly as long as the process)."""

    async def presence_put(self, key: str, field: str, value: bytes, channel: str,
                           event: bytes, worker: str) -> None:
        """Write an entry (and refresh ``worker``'s heartbeat), then publish ``event``."""
        ...

    async def presence_remove(self, key: str, field: str, channel: str, event: bytes) -> None:
        """Delete an entry and, if it was there, publish ``event``."""
        ...

    async def presence_read(self, key: str, channel: str) -> list[bytes]:
        """The entries of live workers; those of dead ones are deleted on the way,
        each with a ``leave`` event published on ``channel``."""
        ...

    async def presence_sweep(self, key: str, channel: str) -> None:
        """Delete the entries of dead workers, publishing a ``leave`` event for each."""
        ...

    async def presence_heartbeat(self, worker: str, keys: list[str]) -> bool:
        """Extend ``worker``'s life by ``presence_ttl`` (and keep ``keys`` from
        expiring); True when it was taken for dead (or forgotten: a restarted
        Redis), so its entries must be written again."""
        ...

    async def close(self) -> None: ...
