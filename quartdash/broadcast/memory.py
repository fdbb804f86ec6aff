"""The in-process backend: zero set-up, one worker process.

A publish is handed to this process's subscribers and sessions before
``publish()`` returns; nothing leaves the process. Retained ``set_props``
state lives in a dict here. Under ``hypercorn -w N`` each worker is its own
world: use the Redis backend to fan out across workers (docs/scaling.md).
"""

from __future__ import annotations

import asyncio

from .backend import Deliver, OnRetained, OnSubscribed, Retained
from .envelope import Envelope, PropsUpdate

__all__ = ["MemoryBackend", "apply_retained"]


def apply_retained(state: Retained, update: PropsUpdate) -> None:
    """Fold one ``set_props`` into retained state: full values are kept, a
    ``Patch`` or ``retain=False`` value forgets the key (what was kept is stale)."""
    for item in update.items:
        key = (update.component_id, item.prop)
        if update.retain and not item.is_patch:
            state[key] = item.payload
        else:
            state.pop(key, None)


class MemoryBackend:
    """A :class:`~quartdash.broadcast.backend.Backend` within one process."""

    name = "memory"

    def __init__(self, deliver: Deliver, on_subscribed: OnSubscribed,
                 on_retained: OnRetained) -> None:
        self._deliver = deliver
        self._on_subscribed = on_subscribed
        self._on_retained = on_retained
        self._state: dict[str, Retained] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self.stats = {"published": 0, "dropped": 0, "reconnects": 0}

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    async def publish(self, channel: str, envelope: Envelope) -> None:
        if isinstance(envelope, PropsUpdate):
            apply_retained(self._state.setdefault(channel, {}), envelope)
        self.stats["published"] += 1
        self._deliver(channel, envelope)

    def want(self, channel: str) -> None:
        self._on_subscribed(channel)
        state = self._state.get(channel)
        if state:
            self._on_retained(channel, dict(state))

    def unwant(self, channel: str) -> None:
        pass

    async def ready(self, channel: str, timeout: float) -> None:
        pass

    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        """Take or renew ``name`` for ``ttl`` seconds; False while someone else holds it."""
        now = asyncio.get_running_loop().time()
        holder = self._leases.get(name)
        if holder is not None and holder[0] != token and holder[1] > now:
            return False
        self._leases[name] = (token, now + ttl)
        return True

    async def release(self, name: str, token: str) -> None:
        holder = self._leases.get(name)
        if holder is not None and holder[0] == token:
            del self._leases[name]

    async def close(self) -> None:
        pass
