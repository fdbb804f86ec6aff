"""The broadcast hub: topics, subscriptions and the local fan-out of one process.

A :class:`Broadcast` owns one backend (in-process or Redis), this process's
presence entries (:mod:`~quartdash.broadcast.presence`), the control channel
that carries ``revoke`` to every worker, and, for every channel this process
listens to, the local audience:

* **subscriptions** — ``async for message in topic.subscribe()`` iterators,
  each with its own bounded buffer;
* **members** — tabs (renderers) that receive the topic's ``set_props``
  directly: the tab of every WebSocket callback iterating a subscription,
  and tabs that called ``await topic.join()``;
* **apps** (``LiveApp``) — for an app's own channel: every tab of that app.

A message arrives once per process (decoded once) and is handed to each
local subscription; a ``set_props`` arrives once per process, already
encoded, and is spliced into each tab's outbox. Nothing here blocks: a slow
subscriber loses its oldest buffered messages, a slow tab coalesces in its
outbox (docs/protocol.md, "Ordering and coalescing").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .. import signals
from ..hosting import dash_internals
from ..hosting import live as hosting_live
from ..hosting.sanitize import PropPolicy
from ..session.handle import check_app_event_name
from .backend import Backend, Retained
from .envelope import Envelope, EventMessage, PropsUpdate, TopicMessage
from .memory import MemoryBackend, apply_retained
from .node import worker_id
from .presence import PresenceEntry, PresenceEvents, PresenceTracker, presence_ttl_from_env

if TYPE_CHECKING:
    from ..hosting.live import LiveApp
    from ..session import Renderer, Session, WebSocketHandle

log = logging.getLogger("quartdash.broadcast")

# A topic spans apps, so its set_props trust nothing but quartdash.trusted().
_PROP_POLICY = PropPolicy()

URL_ENV = "QUARTDASH_BROADCAST_URL"
PREFIX_ENV = "QUARTDASH_BROADCAST_PREFIX"
DEFAULT_BUFFER = 256
READY_TIMEOUT = 5.0

_hubs: weakref.WeakSet[Broadcast] = weakref.WeakSet()


def current_websocket() -> WebSocketHandle | None:
    """``ctx.websocket`` of the running callback, or None (no error) elsewhere."""
    return getattr(dash_internals.current_callback_context(), "dash_websocket", None)


def _tab_of(ws: WebSocketHandle) -> tuple[Session, Renderer]:
    """The session and tab record behind a callback's ``ctx.websocket`` (quartdash
    makes every handle for one of its own sessions)."""
    return cast("Session", ws.session), cast("Renderer", ws.renderer)


def _member_key(ws: WebSocketHandle) -> tuple[Session, str]:
    return cast("Session", ws.session), ws.renderer_id


@dataclass(eq=False, slots=True)
class _Member:
    """One tab that receives a channel's ``set_props``."""

    session: Session
    renderer: Renderer
    refs: int = 0  # open subscriptions of callbacks on this tab
    joined: bool = False  # topic.join()


@dataclass(eq=False, slots=True)
class _Channel:
    name: str
    subscriptions: set[Subscription] = field(default_factory=set)
    members: dict[tuple[Session, str], _Member] = field(default_factory=dict)
    lives: set[LiveApp] = field(default_factory=set)
    retained: Retained = field(default_factory=dict)
    touched: set[tuple[str, str]] = field(default_factory=set)  # set since (re)subscribing
    wanted: bool = False
    always: bool = False  # the control channel: listened to for the process's life

    def has_audience(self) -> bool:
        return bool(self.always or self.subscriptions or self.members or self.lives)


class Broadcast:
    """One process's broadcast hub. The module-level API uses a default one.

    ``url``: ``memory://`` (the default) or ``redis://host:port/db``
    (``rediss://`` for TLS); ``None`` reads ``$QUARTDASH_BROADCAST_URL`` at
    first use. ``prefix`` namespaces every Redis key and channel
    (``$QUARTDASH_BROADCAST_PREFIX``, default ``quartdash``), so several
    deployments can share one Redis.
    """

    def __init__(self, url: str | None = None, *, prefix: str | None = None,
                 presence_ttl: float | None = None) -> None:
        self._url = url
        self._prefix = prefix
        self._presence_ttl = presence_ttl
        self.presence = PresenceTracker(self)
        self._backend: Backend | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channels: dict[str, _Channel] = {}
        self._sessions: dict[Session, set[tuple[_Channel, _Member | Subscription]]] = {}
        self._app_channels: dict[LiveApp, _Channel] = {}
        self.counters = {"messages_delivered": 0, "props_delivered": 0, "props_encoded": 0,
                         "events_delivered": 0, "events_encoded": 0,
                         "subscriber_drops": 0, "fanout_seconds": 0.0}
        _hubs.add(self)

    # -- configuration ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url or os.environ.get(URL_ENV) or "memory://"

    @property
    def prefix(self) -> str:
        return self._prefix or os.environ.get(PREFIX_ENV) or "quartdash"

    @property
    def presence_ttl(self) -> float:
        """Seconds a dead worker's presence entries keep counting, at most (Redis);
        ``$QUARTDASH_PRESENCE_TTL``, default 5."""
        return self._presence_ttl or presence_ttl_from_env()

    def configure(self, url: str | None = None, *, prefix: str | None = None,
                  presence_ttl: float | None = None) -> None:
        """Choose the backend before first use (later: ``await close()`` first)."""
        if self._backend is not None:
            raise RuntimeError("broadcast already started; await broadcast.close() first")
        if presence_ttl is not None and not presence_ttl > 0:
            raise ValueError("presence_ttl must be positive")
        self._url = url
        self._prefix = prefix
        self._presence_ttl = presence_ttl
        if self.backend_name == "redis":
            from . import redis  # noqa: F401 - fail here, not at first publish, without redis-py

    @property
    def backend_name(self) -> str:
        return "redis" if self.url.startswith(("redis://", "rediss://", "unix://")) else "memory"

    def backend(self) -> Backend:
        """The backend bound to the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        if self._backend is not None and self._loop is loop:
            return self._backend
        listen()
        if self._backend is not None:
            old = self._loop
            if old is not None and old.is_running() and not old.is_closed():
                raise RuntimeError(
                    "quartdash.broadcast runs on the server's event loop; from another "
                    "thread use topic.publish_threadsafe(message)")
            # A new event loop (tests, a restarted server): the old loop's
            # state cannot be used from this one.
            log.debug("broadcast: new event loop, starting afresh")
            self._channels.clear()
            self._sessions.clear()
            self._app_channels.clear()
            self.presence.reset()
        url = self.url
        if self.backend_name == "redis":
            from .redis import RedisBackend

            self._backend = RedisBackend(url, prefix=self.prefix, deliver=self._deliver,
                                         on_subscribed=self._on_subscribed,
                                         on_retained=self._on_retained,
                                         presence_ttl=self.presence_ttl)
        elif url.startswith("memory://"):
            self._backend = MemoryBackend(self._deliver, self._on_subscribed, self._on_retained)
        else:
            raise ValueError(f"unsupported broadcast URL {url!r}: use memory:// or redis://")
        self._loop = loop
        self._backend.start()
        return self._backend

    def channel_name(self, topic: str) -> str:
        return f"{self.prefix}:topic:{topic}"

    def app_channel_name(self, live: LiveApp) -> str:
        return f"{self.prefix}:app:{live.app_key}"

    @property
    def control_channel_name(self) -> str:
        return f"{self.prefix}:control"

    def topic(self, name: str) -> Topic:
        return Topic(name, hub=self)

    @staticmethod
    def tab_of(ws: WebSocketHandle) -> tuple[Session, Renderer]:
        return _tab_of(ws)

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, channel: str, envelope: Envelope) -> None:
        await self.backend().publish(channel, envelope)

    async def publish_props(self, channel: str, component_id: str | dict[str, Any],
                            props: Mapping[str, Any], *, retain: bool) -> None:
        if isinstance(component_id, dict):
            component_id = dash_internals.stringify_id(component_id)
        # Checked once, here, before it reaches any page (docs/security.md).
        props = _PROP_POLICY.check_all(component_id, dict(props))
        update = PropsUpdate.of(component_id, props, retain=retain)
        self.counters["props_encoded"] += len(update.items)
        await self.publish(channel, update)

    async def publish_event(self, channel: str, name: str, data: Any) -> None:
        """An event for the JavaScript of every tab of ``channel``, encoded once."""
        event = EventMessage.of(check_app_event_name(name), data)
        self.counters["events_encoded"] += 1
        await self.publish(channel, event)

    # -- the local audience ---------------------------------------------------------------

    def _channel(self, name: str) -> _Channel:
        self.backend()  # bind to this loop first (a new loop starts with no channels)
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(name)
        return channel

    def _update_interest(self, channel: _Channel) -> None:
        backend = self.backend()
        if channel.has_audience():
            if not channel.wanted:
                channel.wanted = True
                channel.touched.clear()
                backend.want(channel.name)
        elif channel.wanted:
            channel.wanted = False
            channel.retained.clear()  # no longer kept current
            backend.unwant(channel.name)
            if not channel.lives:
                self._channels.pop(channel.name, None)

    async def _ready(self, channel: _Channel) -> None:
        await self.backend().ready(channel.name, READY_TIMEOUT)

    def _attach(self, channel: _Channel, item: _Member | Subscription,
                session: Session) -> None:
        self._sessions.setdefault(session, set()).add((channel, item))

    def _detach(self, channel: _Channel, item: _Member | Subscription,
                session: Session) -> None:
        attached = self._sessions.get(session)
        if attached is not None:
            attached.discard((channel, item))
            if not attached:
                del self._sessions[session]

    def _member(self, channel: _Channel, ws: WebSocketHandle) -> _Member:
        session, renderer = _tab_of(ws)
        key = (session, renderer.id)
        member = channel.members.get(key)
        if member is None:
            member = channel.members[key] = _Member(session, renderer)
            self._attach(channel, member, session)
        return member

    def _drop_member(self, channel: _Channel, member: _Member) -> None:
        if channel.members.get((member.session, member.renderer.id)) is member:
            del channel.members[(member.session, member.renderer.id)]
        self._detach(channel, member, member.session)

    async def join(self, name: str, ws: WebSocketHandle) -> None:
        channel = self._channel(name)
        had_it = channel.wanted
        member = self._member(channel, ws)
        first = not (member.joined or member.refs)
        member.joined = True
        self._update_interest(channel)
        if had_it and first:
            self._replay(channel, member)
        await self._ready(channel)

    async def leave(self, name: str, ws: WebSocketHandle) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        member = channel.members.get(_member_key(ws))
        if member is None:
            return
        member.joined = False
        if not member.refs:
            self._drop_member(channel, member)
        self._update_interest(channel)

    async def _open(self, sub: Subscription) -> None:
        channel = self._channel(sub.channel)
        had_it = channel.wanted
        channel.subscriptions.add(sub)
        ws = sub.websocket
        if ws is not None:
            member = self._member(channel, ws)
            first = not (member.joined or member.refs)
            member.refs += 1
            self._attach(channel, sub, _tab_of(ws)[0])
            if had_it and first:
                self._replay(channel, member)
        self._update_interest(channel)
        await self._ready(channel)

    def _close(self, sub: Subscription) -> None:
        channel = self._channels.get(sub.channel)
        if channel is None or sub not in channel.subscriptions:
            return
        channel.subscriptions.discard(sub)
        ws = sub.websocket
        if ws is not None:
            self._detach(channel, sub, _tab_of(ws)[0])
            member = channel.members.get(_member_key(ws))
            if member is not None:
                member.refs -= 1
                if member.refs <= 0 and not member.joined:
                    self._drop_member(channel, member)
        if self._loop is not None and asyncio._get_running_loop() is self._loop:
            self._update_interest(channel)  # (not from a generator finalised off-loop)

    def _replay(self, channel: _Channel, member: _Member) -> None:
        """Send retained state to a tab that just joined."""
        for (component_id, prop), payload in list(channel.retained.items()):
            member.session.push_encoded_prop(member.renderer, component_id, prop, payload,
                                            is_patch=False)

    # -- delivery (called by the backend) ---------------------------------------------------

    def _deliver(self, name: str, envelope: Envelope) -> None:
        channel = self._channels.get(name)
        if channel is None:
            return
        if channel.always:
            if isinstance(envelope, TopicMessage):
                self._on_control(envelope)
            return
        started = time.perf_counter()
        if isinstance(envelope, TopicMessage):
            subscriptions = list(channel.subscriptions)
            if subscriptions:
                value = envelope.value()  # decoded once for every local subscriber
                for sub in subscriptions:
                    sub._put(value)
                self.counters["messages_delivered"] += len(subscriptions)
        elif isinstance(envelope, EventMessage):
            self._push_event(channel, envelope.payload)
        else:
            for item in envelope.items:
                channel.touched.add((envelope.component_id, item.prop))
            apply_retained(channel.retained, envelope)
            self._push(channel, [(envelope.component_id, item.prop, item.payload,
                                  item.is_patch) for item in envelope.items])
        self.counters["fanout_seconds"] += time.perf_counter() - started

    def _push(self, channel: _Channel, items: list[tuple[str, str, bytes, bool]]) -> None:
        delivered = 0
        for member in list(channel.members.values()):
            for component_id, prop, payload, is_patch in items:
                member.session.push_encoded_prop(member.renderer, component_id, prop, payload,
                                                is_patch=is_patch)
            delivered += len(items)
        for live in channel.lives:
            for session in list(live.sessions):
                for component_id, prop, payload, is_patch in items:
                    session.push_encoded_prop(None, component_id, prop, payload,
                                             is_patch=is_patch)
                delivered += len(items) * len(session.renderers)
        self.counters["props_delivered"] += delivered

    def _push_event(self, channel: _Channel, payload: bytes) -> None:
        delivered = 0
        for member in list(channel.members.values()):
            member.session.push_encoded_event(member.renderer, payload)
            delivered += 1
        for live in channel.lives:
            for session in list(live.sessions):
                session.push_encoded_event(None, payload)
                delivered += len(session.renderers)
        self.counters["events_delivered"] += delivered

    def _on_subscribed(self, name: str) -> None:
        channel = self._channels.get(name)
        if channel is not None:
            channel.touched.clear()

    def _on_retained(self, name: str, state: Retained) -> None:
        """Retained state read from the backend after (re)subscribing."""
        channel = self._channels.get(name)
        if channel is None or not channel.wanted:
            return
        fresh = [(key, payload) for key, payload in state.items()
                 if key not in channel.touched and channel.retained.get(key) != payload]
        if not fresh:
            return
        channel.retained.update(fresh)
        self._push(channel, [(cid, prop, payload, False) for (cid, prop), payload in fresh])

    # -- sessions (from quartdash's signals) --------------------------------------------------

    def app_channel(self, live: LiveApp) -> _Channel:
        self.backend()
        channel = self._app_channels.get(live)
        if channel is None:
            channel = self._channel(self.app_channel_name(live))
            channel.lives.add(live)
            self._app_channels[live] = channel
        return channel

    def _session_connected(self, live: LiveApp) -> None:
        self._update_interest(self.app_channel(live))
        self._listen_for_control()

    # -- control: revoke in every worker --------------------------------------------------

    def _listen_for_control(self) -> None:
        channel = self._channel(self.control_channel_name)
        if not channel.always:
            channel.always = True
            self._update_interest(channel)

    async def publish_control(self, message: dict[str, Any]) -> None:
        """Send a control message to every worker (raises ``ConnectionError``
        when the backend cannot take it)."""
        message = {**message, "from": worker_id()}
        await self.backend().publish(self.control_channel_name, TopicMessage.of(message),
                                     strict=True)

    def _on_control(self, envelope: TopicMessage) -> None:
        try:
            message = envelope.value()
            op = message["op"]
            sender = message["from"]
        except (ValueError, KeyError, TypeError) as error:
            log.warning("broadcast: ignoring a malformed control message (%r)", error)
            return
        if sender == worker_id():
            return  # ours: already done here
        if op != "revoke":
            log.warning("broadcast: ignoring the unknown control message %r", op)
            return
        app, identity = message.get("app"), message.get("identity")
        code, reason = message.get("code"), message.get("reason")
        if not (isinstance(identity, str) and isinstance(code, int) and
                isinstance(reason, str) and (app is None or isinstance(app, str))):
            log.warning("broadcast: ignoring a malformed revoke message")
            return
        closed = 0
        for live in list(hosting_live.live_apps):
            if app is None or live.app_key == app:
                closed += len(live.revoke_local(identity, code, reason))
        if closed:
            log.info("broadcast: revoked %d session(s) here for another worker", closed)

    def _renderer_joined(self, live: LiveApp, session: Session, renderer_id: str) -> None:
        channel = self._app_channels.get(live)
        renderer = session.renderers.get(renderer_id)
        if channel is None or renderer is None or not channel.retained:
            return
        for (component_id, prop), payload in list(channel.retained.items()):
            session.push_encoded_prop(renderer, component_id, prop, payload, is_patch=False)

    def _session_gone(self, session: Session, renderer_id: str | None = None) -> None:
        """The session (or one tab of it) is shutting down: end what it held."""
        self.presence.gone(session, renderer_id)
        attached = self._sessions.get(session)
        if not attached:
            return
        touched: set[_Channel] = set()
        for channel, item in list(attached):
            if isinstance(item, _Member):
                if renderer_id is None or item.renderer.id == renderer_id:
                    self._drop_member(channel, item)
                    touched.add(channel)
            elif renderer_id is None or item.renderer_id == renderer_id:
                item._end()  # wakes its iterator, which then unsubscribes itself
        for channel in touched:
            self._update_interest(channel)

    # -- introspection and shutdown ---------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and the size of every structure (a leak shows here)."""
        backend = self._backend
        return {
            "backend": self.backend_name,
            "connected": bool(backend is not None and backend.connected),
            "channels": len(self._channels),
            "subscriptions": sum(len(c.subscriptions) for c in self._channels.values()),
            "members": sum(len(c.members) for c in self._channels.values()),
            "sessions": len(self._sessions),
            **self.counters,
            **self.presence.stats(),
            **(backend.stats if backend is not None else
               {"published": 0, "dropped": 0, "reconnects": 0}),
        }

    async def close(self) -> None:
        """End every subscription and release the backend (server shutdown)."""
        if self._backend is not None and self._loop is asyncio.get_running_loop():
            await self.presence.close()  # our tabs leave (with Redis: for the others to see)
        else:
            self.presence.reset()
        for channel in list(self._channels.values()):
            for sub in list(channel.subscriptions):
                sub._end()
        backend, self._backend = self._backend, None
        self._channels.clear()
        self._sessions.clear()
        self._app_channels.clear()
        if backend is not None and self._loop is asyncio.get_running_loop():
            await backend.close()
        self._loop = None


class Subscription:
    """A topic subscription: ``async for message in topic.subscribe(): ...``.

    Messages wait in a buffer of ``maxsize``; when it is full the oldest is
    dropped (counted in :attr:`dropped`). With ``coalesce``, a message whose
    key (``coalesce(message)``; ``None`` = never coalesce) matches one still
    waiting replaces it and moves to the end: latest wins, as in a session's
    outbox. ``maxsize=1`` keeps only the newest message.

    Inside a WebSocket callback the iteration ends by itself (no exception)
    once ``ctx.websocket.is_shutdown`` becomes true, and while it runs the
    callback's tab also receives the topic's ``set_props``. Leaving the loop
    in any way (``break``, return, an exception, cancellation) unsubscribes.
    ``async with topic.subscribe() as sub:`` subscribes on entry instead of
    on first iteration.
    """

    __slots__ = ("_buffer", "_ended", "_hub", "_ready", "_seq", "_state", "channel",
                 "coalesce", "dropped", "maxsize", "received", "topic", "websocket")

    def __init__(self, hub: Broadcast, topic: str, *, maxsize: int,
                 coalesce: Callable[[Any], Hashable | None] | None,
                 websocket: WebSocketHandle | None, channel: str | None = None) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._hub = hub
        self.topic = topic
        self.channel = channel or hub.channel_name(topic)
        self.maxsize = maxsize
        self.coalesce = coalesce
        self.websocket = websocket
        self.dropped = 0
        self.received = 0
        self._buffer: OrderedDict[Hashable, Any] = OrderedDict()
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._ended = False
        self._state = "new"  # new -> open -> closed

    @property
    def renderer_id(self) -> str | None:
        return self.websocket.renderer_id if self.websocket is not None else None

    @property
    def ended(self) -> bool:
        ws = self.websocket
        return self._ended or (ws is not None and ws.is_shutdown)

    async def __aenter__(self) -> Subscription:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Any]:
        owner = self._state == "new"
        if owner:
            await self._open()
        try:
            while not self.ended:
                if self._buffer:
                    _, message = self._buffer.popitem(last=False)
                    yield message
                    continue
                self._ready.clear()
                await self._ready.wait()
        finally:
            if owner:
                self._close()

    async def _open(self) -> None:
        if self._state != "new":
            raise RuntimeError("a Subscription is opened once")
        ws = self.websocket
        if ws is not None and ws.is_shutdown:
            self._state = "closed"
            return
        self._state = "open"
        await self._hub._open(self)

    def _close(self) -> None:
        if self._state == "open":
            self._hub._close(self)
        self._state = "closed"
        self._buffer.clear()

    def _put(self, message: Any) -> None:
        if self._ended:
            return
        self.received += 1
        key: Hashable | None = None
        if self.coalesce is not None:
            try:
                key = self.coalesce(message)
            except Exception:
                log.exception("broadcast: coalesce function raised; not coalescing")
            if key is not None:
                key = ("k", key)
                self._buffer.pop(key, None)
        if key is None:
            key = ("s", next(self._seq))
        if len(self._buffer) >= self.maxsize:
            self._buffer.popitem(last=False)
            self.dropped += 1
            self._hub.counters["subscriber_drops"] += 1
            if self.dropped == 1:
                log.info("broadcast: a subscriber of %r is slower than the feed; dropping its "
                         "oldest messages (buffer %d)", self.topic, self.maxsize)
        self._buffer[key] = message
        self._ready.set()

    def _end(self) -> None:
        self._ended = True
        self._ready.set()

    def __repr__(self) -> str:
        return (f"<Subscription {self.topic!r} {self._state} waiting={len(self._buffer)} "
                f"dropped={self.dropped}>")


class Topic:
    """A named stream every worker can publish to and subscribe to.

    ``Topic("prices")`` is a cheap handle: create it once at module level.
    Messages are JSON values (``quartdash.wire.protocol.dumps`` encodes them:
    numpy, Dash components and plotly figures are fine) and subscribers get
    them decoded, with either backend. The decoded value is shared by every
    subscriber in the process: treat it as read-only.
    """

    __slots__ = ("_hub", "name")

    def __init__(self, name: str, *, hub: Broadcast | None = None) -> None:
        if not name:
            raise ValueError("a topic needs a name")
        self.name = name
        self._hub = hub

    @property
    def hub(self) -> Broadcast:
        from . import default_hub

        return self._hub or default_hub()

    async def publish(self, message: Any) -> None:
        """Send ``message`` to every subscriber of this topic, in every worker.

        Never blocks on subscribers. With Redis, a publish made while Redis
        is unreachable is dropped (docs/scaling.md).
        """
        hub = self.hub
        await hub.publish(hub.channel_name(self.name), TopicMessage.of(message))

    def publish_threadsafe(self, message: Any) -> concurrent.futures.Future[None]:
        """:meth:`publish` from another thread (a plain ``def`` callback): runs on
        the server's event loop; returns at once with a future of the publish."""
        loop = self.hub._loop
        if loop is None or loop.is_closed():
            raise RuntimeError("broadcast is not running on an event loop yet")
        return asyncio.run_coroutine_threadsafe(self.publish(message), loop)

    def subscribe(self, *, maxsize: int = DEFAULT_BUFFER,
                  coalesce: Callable[[Any], Hashable | None] | None = None) -> Subscription:
        """Iterate the messages published from now on (see :class:`Subscription`)."""
        return Subscription(self.hub, self.name, maxsize=maxsize, coalesce=coalesce,
                            websocket=current_websocket())

    async def set_props(self, component_id: str | dict[str, Any], props: Mapping[str, Any],
                        *, retain: bool = True) -> None:
        """``set_props`` on every tab of this topic (joined, or subscribed from a
        WebSocket callback), in every worker: encoded once, not once per tab.

        ``retain=True`` also keeps each full value so a tab that joins later
        starts from it; a ``Patch`` (or ``retain=False``) is delivered but
        forgets the key's retained value.
        """
        hub = self.hub
        await hub.publish_props(hub.channel_name(self.name), component_id, props,
                                retain=retain)

    async def send_event(self, name: str, data: Any = None) -> None:
        """An event for the JavaScript of every tab of this topic (joined, or
        subscribed from a WebSocket callback), in every worker, encoded once:
        ``window.quartdash.on(name, handler)`` gets ``data``. Ordered per tab
        with everything else it receives; within each connection's event
        budget (an event that does not fit is dropped and that tab told, see
        ``ctx.websocket.send_event``). Not retained: a tab joining later does
        not get earlier events."""
        hub = self.hub
        await hub.publish_event(hub.channel_name(self.name), name, data)

    async def join(self, ws: WebSocketHandle | None = None) -> None:
        """Make this tab receive the topic's ``set_props`` until it leaves (or the
        connection closes); it gets the retained state at once. Call inside a
        WebSocket callback (``ws`` defaults to ``ctx.websocket``)."""
        hub = self.hub
        await hub.join(hub.channel_name(self.name), _require_ws(ws, "join"))

    async def leave(self, ws: WebSocketHandle | None = None) -> None:
        """Undo :meth:`join` for this tab."""
        hub = self.hub
        await hub.leave(hub.channel_name(self.name), _require_ws(ws, "leave"))

    # -- presence (docs/live-sessions.md) ---------------------------------------------------

    async def track(self, meta: Mapping[str, Any] | None = None, *,
                    ws: WebSocketHandle | None = None) -> None:
        """Make this tab present on the topic, with ``meta`` (JSON values the app
        chooses, e.g. ``{"page": "/sales"}``; at most 8 KiB with the ids), in
        every worker's :meth:`presence`, until the tab leaves, its connection
        closes or drops, or :meth:`untrack`. Calling it again updates ``meta``
        (an ``update`` event). Call inside a WebSocket callback (``ws``
        defaults to ``ctx.websocket``). With Redis unreachable the entry is
        written once Redis is back."""
        await self.hub.presence.track(self.name, _require_ws(ws, "track"), meta or {})

    async def untrack(self, *, ws: WebSocketHandle | None = None) -> None:
        """Undo :meth:`track` for this tab (a ``leave`` event)."""
        await self.hub.presence.untrack(self.name, _require_ws(ws, "untrack"))

    async def presence(self) -> list[PresenceEntry]:
        """Every tab present on this topic now, in every worker, oldest first:
        its identity, the app's metadata, session, tab and worker. Entries of a
        worker that died stop counting at most ``presence_ttl`` seconds (5)
        after it died. Raises ``ConnectionError`` when Redis is unreachable."""
        return await self.hub.presence.read(self.name)

    def presence_events(self, *, maxsize: int = DEFAULT_BUFFER) -> PresenceEvents:
        """Iterate this topic's join, update and leave events, from every worker
        (see :class:`~quartdash.broadcast.presence.PresenceEvents`). Inside a
        WebSocket callback the iteration ends with the tab."""
        hub = self.hub
        subscription = Subscription(hub, self.name, maxsize=maxsize, coalesce=None,
                                    websocket=current_websocket(),
                                    channel=hub.presence.channel(self.name))
        return PresenceEvents(hub, self.name, subscription)

    def __repr__(self) -> str:
        return f"<Topic {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topic) and other.name == self.name and other._hub is self._hub

    def __hash__(self) -> int:
        return hash(self.name)


def _require_ws(ws: WebSocketHandle | None, what: str) -> WebSocketHandle:
    ws = ws or current_websocket()
    if ws is None:
        raise RuntimeError(f"topic.{what}() needs a tab: call it inside a WebSocket callback "
                           "or pass ws=ctx.websocket")
    return ws


# -- quartdash's signals drive the session side ------------------------------------------------


def _on_session_connected(live: LiveApp, session: Session, **_: Any) -> None:
    for hub in list(_hubs):
        hub._session_connected(live)


def _on_session_closing(live: LiveApp, session: Session, **_: Any) -> None:
    for hub in list(_hubs):
        hub._session_gone(session)


def _on_renderer_joined(live: LiveApp, session: Session, renderer_id: str, **_: Any) -> None:
    for hub in list(_hubs):
        hub._renderer_joined(live, session, renderer_id)


def _on_renderer_left(live: LiveApp, session: Session, renderer_id: str, **_: Any) -> None:
    for hub in list(_hubs):
        hub._session_gone(session, renderer_id)


def _on_session_detached(live: LiveApp, session: Session, **_: Any) -> None:
    for hub in list(_hubs):
        if hub._backend is not None:
            hub.presence.detached(session)


def _on_session_resumed(live: LiveApp, session: Session, **_: Any) -> None:
    for hub in list(_hubs):
        if hub._backend is not None:
            hub.presence.resumed(session)


_RECEIVERS = (
    (signals.session_connected, _on_session_connected),
    (signals.session_closing, _on_session_closing),
    (signals.renderer_joined, _on_renderer_joined),
    (signals.renderer_left, _on_renderer_left),
    (signals.session_detached, _on_session_detached),
    (signals.session_resumed, _on_session_resumed),
)


class _RevokeRelay:
    """How ``app.live.revoke`` reaches every other worker: a control message on
    the default hub (:class:`quartdash.hosting.live.RevokeRelay`)."""

    async def revoke(self, app: str | None, identity: str, code: int, reason: str) -> None:
        from . import default_hub

        await default_hub().publish_control({"op": "revoke", "app": app,
                                             "identity": identity, "code": code,
                                             "reason": reason})


def listen() -> None:
    """Connect the hub to quartdash's session signals (again, if someone
    disconnected every receiver, as test isolation may)."""
    for signal, receiver in _RECEIVERS:
        if id(receiver) not in signal.receivers:
            signal.connect(receiver, weak=False)
    hosting_live.set_revoke_relay(_REVOKE_RELAY)


_REVOKE_RELAY = _RevokeRelay()


listen()
