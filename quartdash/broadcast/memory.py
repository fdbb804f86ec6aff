"""The in-process backend: zero set-up, one worker process.

A publish is handed to this process's subscribers and sessions before
``publish()`` returns; nothing leaves the process. Retained ``set_props``
state lives in a dict here. Under ``hypercorn -w N`` each worker is its own
world: use the Redis backend to fan out across workers (docs/scaling.md).
"""

from __future__ import annotations

import asyncio

from .backend import (
    RETAIN_CHANNELS,
    RETAIN_KEYS,
    RETAIN_TTL,
    Deliver,
    OnRetained,
    OnSubscribed,
    Retained,
)
from .envelope import Envelope, PropsUpdate, TopicMessage

__all__ = ["MemoryBackend", "apply_retained"]


def apply_retained(state: Retained, update: PropsUpdate, max_keys: int | None = None) -> None:
    """Fold one ``set_props`` into retained state: full values are kept, a
    ``Patch`` or ``retain=False`` value forgets the key (what was kept is stale).
    Past ``max_keys`` the oldest written key is forgotten."""
    for item in update.items:
        key = (update.component_id, item.prop)
        state.pop(key, None)  # re-inserted last: dict order is write order
        if update.retain and not item.is_patch:
            state[key] = item.payload
    limit = RETAIN_KEYS if max_keys is None else max_keys
    while len(state) > limit:
        del state[next(iter(state))]


class MemoryBackend:
    """A :class:`~quartdash.broadcast.backend.Backend` within one process."""

    name = "memory"
    presence_ttl: float | None = None  # entries live exactly as long as this process

    def __init__(self, deliver: Deliver, on_subscribed: OnSubscribed,
                 on_retained: OnRetained) -> None:
        self._deliver = deliver
        self._on_subscribed = on_subscribed
        self._on_retained = on_retained
        # Retained state by channel, least recently written first (see _expire).
        self._state: dict[str, Retained] = {}
        self._written: dict[str, float] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._presence: dict[str, dict[str, bytes]] = {}
        self.stats = {"published": 0, "dropped": 0, "reconnects": 0, "retained_expired": 0}

    @property
    def connected(self) -> bool:
        return True

    def start(self) -> None:
        pass

    async def publish(self, channel: str, envelope: Envelope, *, strict: bool = False) -> None:
        if isinstance(envelope, PropsUpdate):
            now = asyncio.get_running_loop().time()
            state = self._state.pop(channel, None) or {}
            apply_retained(state, envelope)
            self._written.pop(channel, None)
            if state:
                self._state[channel], self._written[channel] = state, now
            self._expire(now)
        self.stats["published"] += 1
        self._deliver(channel, envelope)

    def _expire(self, now: float) -> None:
        """Forget retained state past RETAIN_TTL or beyond RETAIN_CHANNELS."""
        while self._state:
            oldest = next(iter(self._state))
            if len(self._state) <= RETAIN_CHANNELS and now - self._written[oldest] <= RETAIN_TTL:
                return
            del self._state[oldest], self._written[oldest]
            self.stats["retained_expired"] += 1

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

    # -- presence (one process: no heartbeats, nothing dies without us) ------------------

    async def presence_put(self, key: str, field: str, value: bytes, channel: str,
                           event: bytes, worker: str) -> None:
        self._presence.setdefault(key, {})[field] = value
        self._deliver(channel, TopicMessage(event))

    async def presence_remove(self, key: str, field: str, channel: str, event: bytes) -> None:
        entries = self._presence.get(key)
        if entries is None or entries.pop(field, None) is None:
            return
        if not entries:
            del self._presence[key]
        self._deliver(channel, TopicMessage(event))

    async def presence_read(self, key: str, channel: str) -> list[bytes]:
        return list(self._presence.get(key, {}).values())

    async def presence_sweep(self, key: str, channel: str) -> None:
        pass

    async def presence_heartbeat(self, worker: str, keys: list[str]) -> bool:
        return False

    async def close(self) -> None:
        pass
