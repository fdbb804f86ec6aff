"""Presence: who is on a topic right now, in every worker (docs/live-sessions.md).

A tab *tracks* itself on a topic (``await topic.track({"page": "/sales"})``
in a WebSocket callback): one entry, with the session's identity and the
metadata the app set, until the tab leaves, its connection closes (or drops:
a detached session is not present until it resumes) or it untracks.
``await topic.presence()`` lists the entries of every worker;
``topic.presence_events()`` iterates join, update and leave events.

Where the entries live is the backend's business
(:class:`~quartdash.broadcast.backend.Backend`): in-process with
``memory://``; with Redis, a hash per topic plus a deadline per worker that
its heartbeat pushes ``presence_ttl`` seconds ahead every ``ttl / 5``
seconds. A worker that dies (SIGKILL, a lost machine) stops beating: its
entries stop counting once its deadline passes (at most ``ttl`` after the
crash), and the next sweep deletes them and publishes their leave events
(workers with ``presence_events()`` listeners sweep every ``ttl / 5`` s).
A worker that was only taken for dead (Redis unreachable for longer than
``ttl``) writes its entries again when it gets through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..types import Identity
from ..wire import protocol
from .node import worker_id

if TYPE_CHECKING:
    from ..session import Renderer, Session
    from ..session.handle import WebSocketHandle
    from .backend import Backend

__all__ = ["DEFAULT_TTL", "LEAVE_PREFIX", "LEAVE_SUFFIX", "MAX_ENTRY_BYTES", "TTL_ENV",
           "PresenceEntry", "PresenceEvent", "PresenceEvents", "PresenceTracker",
           "presence_ttl_from_env"]

log = logging.getLogger("quartdash.broadcast")

TTL_ENV = "QUARTDASH_PRESENCE_TTL"
DEFAULT_TTL = 5.0
"""Seconds a worker's presence entries outlive its last heartbeat (Redis)."""
MAX_ENTRY_BYTES = 8192
"""An entry's JSON (identity, metadata, ids) may not be larger."""
# Heartbeats between two refreshes of the topics' key expiry (about a minute).
TOUCH_EVERY = 60

# A leave event around an entry's JSON, as the Redis sweep script builds it.
LEAVE_PREFIX = b'{"kind":"leave","entry":'
LEAVE_SUFFIX = b"}"


def presence_ttl_from_env() -> float:
    raw = os.environ.get(TTL_ENV)
    if not raw:
        return DEFAULT_TTL
    ttl = float(raw)
    if not ttl > 0:
        raise ValueError(f"{TTL_ENV} must be a positive number of seconds, not {raw!r}")
    return ttl


class _Hub(Protocol):
    """What presence needs of its hub (:class:`~quartdash.broadcast.hub.Broadcast`)."""

    @property
    def prefix(self) -> str: ...

    @property
    def presence(self) -> PresenceTracker: ...

    def backend(self) -> Backend: ...

    def tab_of(self, ws: WebSocketHandle) -> tuple[Session, Renderer]: ...


class _Subscription(Protocol):
    """A hub subscription (:class:`~quartdash.broadcast.hub.Subscription`)."""

    dropped: int

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def __aiter__(self) -> AsyncIterator[Any]: ...


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    """One tab present on a topic."""

    key: str
    """Unique among the topic's entries: ``<worker>/<session>/<tab>``."""
    identity: Identity | None
    """The session's identity (its connect hook's), or None."""
    meta: Mapping[str, Any]
    """What the app passed to :meth:`~quartdash.broadcast.Topic.track` (JSON values)."""
    app: str
    """The app of the tab (name and URL prefix)."""
    session: str
    """The session's id (:attr:`quartdash.SessionInfo.id`)."""
    tab: str
    """The tab's renderer id."""
    worker: str
    """The worker process serving it (:func:`quartdash.broadcast.node.worker_id`)."""
    joined_at: float
    """When it first tracked (seconds since the epoch); an update keeps it."""

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key,
                "identity": None if self.identity is None else self.identity.to_json(),
                "meta": dict(self.meta), "app": self.app, "session": self.session,
                "tab": self.tab, "worker": self.worker, "joined_at": self.joined_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PresenceEntry:
        identity = data.get("identity")
        return cls(str(data["key"]),
                   None if identity is None else Identity.from_json(identity),
                   dict(data.get("meta") or {}), str(data.get("app", "")),
                   str(data["session"]), str(data["tab"]), str(data["worker"]),
                   float(data["joined_at"]))


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A change of a topic's presence: ``kind`` is ``join``, ``update`` (new
    metadata) or ``leave`` (the tab went, untracked, or its worker died)."""

    kind: str
    entry: PresenceEntry

    @classmethod
    def from_json(cls, data: Any) -> PresenceEvent | None:
        try:
            kind = data["kind"]
            if kind not in ("join", "update", "leave"):
                raise ValueError(kind)
            return cls(kind, PresenceEntry.from_json(data["entry"]))
        except (KeyError, TypeError, ValueError) as error:
            log.warning("broadcast: ignoring a malformed presence event (%r)", error)
            return None


@dataclass(eq=False, slots=True)
class _Tracked:
    """One entry this process wrote (or will write again)."""

    topic: str
    field: str
    session: Session
    renderer_id: str
    value: bytes  # the entry's JSON
    joined_at: float
    visible: bool = True  # False while its session is detached


class PresenceTracker:
    """The presence entries of one process's tabs, and the loop that keeps them
    alive (heartbeats) and sweeps dead workers' entries from watched topics."""

    def __init__(self, hub: _Hub) -> None:
        self._hub = hub
        self._entries: dict[tuple[str, str], _Tracked] = {}
        self._by_session: dict[Session, set[tuple[str, str]]] = {}
        self._watching: dict[str, int] = {}  # topic -> open presence_events() iterators
        self._unremoved: dict[tuple[str, str], tuple[str, bytes]] = {}  # to delete again
        self._dirty = False  # a write failed: write every entry again on the next beat
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._failing = False
        self.counters = {"writes": 0, "removes": 0, "heartbeats": 0, "sweeps": 0,
                         "rewrites": 0, "failures": 0}

    # -- names -----------------------------------------------------------------------

    def key(self, topic: str) -> str:
        return f"{self._hub.prefix}:presence:{topic}"

    def channel(self, topic: str) -> str:
        return f"{self._hub.prefix}:presence-events:{topic}"

    # -- what tabs do ------------------------------------------------------------------

    async def track(self, topic: str, ws: WebSocketHandle, meta: Mapping[str, Any]) -> None:
        session, renderer = self._hub.tab_of(ws)
        if ws.is_shutdown:
            return
        field_ = f"{worker_id()}/{session.id}/{renderer.id}"
        existing = self._entries.get((topic, field_))
        joined_at = existing.joined_at if existing is not None else time.time()
        app = getattr(session.app, "app_key", "")
        value = protocol.dumps({
            "key": field_,
            "identity": None if session.identity is None else session.identity.to_json(),
            "meta": dict(meta), "app": app, "session": session.id, "tab": renderer.id,
            "worker": worker_id(), "joined_at": joined_at,
        })
        if len(value) > MAX_ENTRY_BYTES:
            raise ValueError(f"a presence entry of {len(value)} bytes is over "
                             f"{MAX_ENTRY_BYTES}: keep the metadata small")
        tracked = _Tracked(topic, field_, session, renderer.id, value, joined_at)
        self._entries[(topic, field_)] = tracked
        self._by_session.setdefault(session, set()).add((topic, field_))
        self._unremoved.pop((topic, field_), None)
        self._ensure_loop()
        await self._write(tracked, "update" if existing is not None else "join")

    async def untrack(self, topic: str, ws: WebSocketHandle) -> None:
        session, renderer = self._hub.tab_of(ws)
        tracked = self._forget((topic, f"{worker_id()}/{session.id}/{renderer.id}"))
        if tracked is not None and tracked.visible:
            await self._delete(tracked)

    async def read(self, topic: str) -> list[PresenceEntry]:
        values = await self._hub.backend().presence_read(self.key(topic), self.channel(topic))
        entries = []
        for value in values:
            try:
                entries.append(PresenceEntry.from_json(orjson.loads(value)))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                log.warning("broadcast: ignoring a malformed presence entry of %r (%r)",
                            topic, error)
        return sorted(entries, key=lambda entry: (entry.joined_at, entry.key))

    def watch(self, topic: str) -> None:
        self._watching[topic] = self._watching.get(topic, 0) + 1
        self._ensure_loop()

    def unwatch(self, topic: str) -> None:
        count = self._watching.get(topic, 0) - 1
        if count > 0:
            self._watching[topic] = count
        else:
            self._watching.pop(topic, None)

    # -- what sessions do (quartdash's signals, through the hub) ---------------------------

    def gone(self, session: Session, renderer_id: str | None = None) -> None:
        """The session (or one tab of it) ended: its entries leave."""
        for item in list(self._by_session.get(session, ())):
            tracked = self._entries.get(item)
            if tracked is None or (renderer_id is not None and tracked.renderer_id != renderer_id):
                continue
            self._forget(item)
            if tracked.visible:
                self._spawn(self._delete(tracked))

    def detached(self, session: Session) -> None:
        """Its socket dropped: not present while it waits to be resumed."""
        for item in list(self._by_session.get(session, ())):
            tracked = self._entries.get(item)
            if tracked is not None and tracked.visible:
                tracked.visible = False
                self._spawn(self._delete(tracked))

    def resumed(self, session: Session) -> None:
        for item in list(self._by_session.get(session, ())):
            tracked = self._entries.get(item)
            if tracked is not None and not tracked.visible:
                tracked.visible = True
                self._unremoved.pop(item, None)
                self._spawn(self._write(tracked, "join"))

    # -- the backend ----------------------------------------------------------------------

    def _forget(self, item: tuple[str, str]) -> _Tracked | None:
        tracked = self._entries.pop(item, None)
        if tracked is not None:
            items = self._by_session.get(tracked.session)
            if items is not None:
                items.discard(item)
                if not items:
                    del self._by_session[tracked.session]
        return tracked

    async def _write(self, tracked: _Tracked, kind: str) -> None:
        event = b'{"kind":"' + kind.encode() + b'","entry":' + tracked.value + b"}"
        try:
            await self._hub.backend().presence_put(self.key(tracked.topic), tracked.field,
                                                   tracked.value, self.channel(tracked.topic),
                                                   event, worker_id())
        except ConnectionError as error:
            self._dirty = True
            self._failed(error)
            return
        self.counters["writes"] += 1

    async def _delete(self, tracked: _Tracked) -> None:
        item = (tracked.topic, tracked.field)
        event = LEAVE_PREFIX + tracked.value + LEAVE_SUFFIX
        try:
            await self._hub.backend().presence_remove(self.key(tracked.topic), tracked.field,
                                                      self.channel(tracked.topic), event)
        except ConnectionError as error:
            self._unremoved[item] = (tracked.field, event)  # deleted again on a later beat
            self._ensure_loop()
            self._failed(error)
            return
        self.counters["removes"] += 1

    def _failed(self, error: BaseException) -> None:
        self.counters["failures"] += 1
        if not self._failing:
            self._failing = True
            log.warning("broadcast: presence cannot reach the backend (%r); retrying", error)

    # -- the loop: heartbeats, rewrites, sweeps ---------------------------------------------

    def _ensure_loop(self) -> None:
        ttl = self._hub.backend().presence_ttl
        if ttl is None or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.ensure_future(self._run(ttl))

    async def _run(self, ttl: float) -> None:
        beat = ttl / 5
        beats = 0
        while self._entries or self._watching or self._unremoved:
            try:
                await self._beat(beats % TOUCH_EVERY == 0)
            except ConnectionError as error:
                self._failed(error)
            else:
                if self._failing and not self._dirty and not self._unremoved:
                    self._failing = False
                    log.warning("broadcast: presence reaches the backend again")
            beats += 1
            await asyncio.sleep(beat)

    async def _beat(self, touch: bool) -> None:
        backend = self._hub.backend()
        if self._entries:
            keys = sorted({self.key(topic) for topic, _ in self._entries}) if touch else []
            stale = await backend.presence_heartbeat(worker_id(), keys)
            self.counters["heartbeats"] += 1
            if stale or self._dirty:
                # Taken for dead (our entries were swept) or a write failed:
                # write everything again, with join events.
                self._dirty = False
                self.counters["rewrites"] += 1
                for tracked in list(self._entries.values()):
                    if tracked.visible:
                        await self._write(tracked, "join")
        for (topic, _), (field_, event) in list(self._unremoved.items()):
            await backend.presence_remove(self.key(topic), field_, self.channel(topic), event)
            self._unremoved.pop((topic, field_), None)
            self.counters["removes"] += 1
        for topic in list(self._watching):
            await backend.presence_sweep(self.key(topic), self.channel(topic))
            self.counters["sweeps"] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- shutdown -------------------------------------------------------------------------

    async def close(self, timeout: float = 2.0) -> None:
        """Remove this process's entries (leave events) and stop the loop."""
        removals = [self._delete(t) for t in list(self._entries.values()) if t.visible]
        self._entries.clear()
        self._by_session.clear()
        self._watching.clear()
        tasks = [asyncio.ensure_future(coro) for coro in removals]
        tasks += list(self._background)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new event loop: nothing of the old one is usable)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        for task in list(self._background):
            task.cancel()
        self._entries.clear()
        self._by_session.clear()
        self._watching.clear()
        self._unremoved.clear()
        self._dirty = False

    def stats(self) -> dict[str, int]:
        return {"presence_entries": len(self._entries),
                "presence_watching": sum(self._watching.values()),
                **{f"presence_{name}": value for name, value in self.counters.items()}}


class PresenceEvents:
    """``topic.presence_events()``: the topic's join, update and leave events
    (:class:`PresenceEvent`), from every worker, from now on.

    Iterate it in a persistent callback; like a subscription it ends by itself
    when the tab or its connection goes away. ``async with`` subscribes on
    entry, so a read of :meth:`~quartdash.broadcast.Topic.presence` inside it
    misses no event::

        async with room.presence_events() as events:
            show(await room.presence())
            async for event in events:
                show(await room.presence())
    """

    def __init__(self, hub: _Hub, topic: str, subscription: _Subscription) -> None:
        self._hub = hub
        self.topic = topic
        self._sub = subscription
        self._entered = False

    @property
    def dropped(self) -> int:
        """Events lost because the iterator was slower than they came."""
        return self._sub.dropped

    async def __aenter__(self) -> PresenceEvents:
        self._hub.presence.watch(self.topic)
        self._entered = True
        try:
            await self._sub.__aenter__()
        except BaseException:
            self._hub.presence.unwatch(self.topic)
            self._entered = False
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._sub.__aexit__(*exc_info)
        if self._entered:
            self._entered = False
            self._hub.presence.unwatch(self.topic)

    def __aiter__(self) -> AsyncIterator[PresenceEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[PresenceEvent]:
        owner = not self._entered
        if owner:
            self._hub.presence.watch(self.topic)
        try:
            async for raw in self._sub:
                event = PresenceEvent.from_json(raw)
                if event is not None:
                    yield event
        finally:
            if owner:
                self._hub.presence.unwatch(self.topic)
