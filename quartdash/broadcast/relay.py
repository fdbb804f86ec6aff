"""Resume across workers: a relay through Redis to the worker that holds a session.

Under ``hypercorn -w N`` (or on several machines) a client that lost its
socket usually reconnects to *another* worker than the one holding its
session, whose callbacks are asyncio tasks that cannot move. So the session
stays where it is and the new worker relays:

* every worker that holds resumable sessions records their tokens (hashed)
  in a Redis directory, ``<prefix>:relay:token:<sha256>`` -> its worker
  channel, and listens on that channel;
* a worker receiving a ``resume`` for a token it does not hold looks it up,
  sends ``attach`` (the token, the client's last number, its binding) to
  the holder, and then pipes frames both ways through Redis: the session
  gets a :class:`RelayTransport`, a :class:`~quartdash.types.Transport` like
  any other, and never knows.
* a holder that does not answer within ``ATTACH_TIMEOUT`` (crashed, stopped)
  is reported as ``unreachable``: loss is always signalled. A holder that
  answers ``attaching`` is alive and gets ``ATTACHING_TIMEOUT`` more to take the
  session off its old socket (which it may not have seen die yet).

Enabled when the broadcast URL is ``redis://`` (QUARTDASH_BROADCAST_URL or
``broadcast.configure``); costs one Redis round trip per attach and one
publish per frame while relayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
from typing import Any

import orjson

from ..session.registry import SessionRegistry
from ..types import Transport
from ..wire.protocol import LostReason

__all__ = ["AppRelay", "RedisRelay", "RelayTransport", "relay_for", "relay_stats"]

log = logging.getLogger("quartdash.relay")

ATTACH_TIMEOUT = 3.0
"""Seconds the holder of a session has to answer an ``attach``."""
ATTACHING_TIMEOUT = 10.0
"""Seconds a holder that answered ``attaching`` has to resume the session
(not ``websocket_resume_timeout``, the window a detached session waits)."""
DIRECTORY_TTL = 24 * 3600
"""Seconds a token stays in the directory without being renewed."""
MAX_QUEUED = 1000
"""Frames queued for one relayed connection, either way; more ends the relay."""

_GONE = object()  # the relayed client's socket ended


class RelayTransport:
    """The holder's side of a relayed connection: frames come and go through Redis."""

    def __init__(self, relay: RedisRelay, conn: str, reply: str) -> None:
        self._relay = relay
        self._conn = conn
        self._reply = reply
        self._inbound: asyncio.Queue[Any] = asyncio.Queue(MAX_QUEUED)

    def deliver(self, item: Any) -> None:
        try:
            self._inbound.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("relay %s: the client sends faster than the session reads; ending",
                        self._conn)
            self._inbound = asyncio.Queue(1)
            self._inbound.put_nowait(_GONE)

    async def receive(self) -> str | bytes:
        item = await self._inbound.get()
        if item is _GONE:
            raise ConnectionError("the relayed client went away")
        return str(item)

    async def send(self, text: str) -> None:
        await self._relay.publish(self._reply, {"op": "frame", "conn": self._conn, "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._relay.publish(self._reply, {"op": "close", "conn": self._conn,
                                                "code": code, "reason": reason})


class RedisRelay:
    """This worker's end of the relay: one Redis channel, every app's sessions."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.channel = f"{prefix}:relay:worker:{self.worker}"
        self.apps: dict[str, SessionRegistry] = {}
        self.stats = {"attached_here": 0, "relayed_out": 0, "unreachable": 0}
        self._redis: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._links: dict[str, RelayTransport] = {}  # conn -> the holder's transport
        self._waiting: dict[str, asyncio.Queue[Any]] = {}  # conn -> frames for our client
        self._tasks: set[asyncio.Task[Any]] = set()

    def for_app(self, app_key: str, registry: SessionRegistry) -> AppRelay:
        self.apps[app_key] = registry
        return AppRelay(self, app_key)

    # -- Redis ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and listen on this worker's channel (once)."""
        if self._reader is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self.url)
            self._reader = asyncio.create_task(self._listen(), name="quartdash-relay")
        async with asyncio.timeout(ATTACH_TIMEOUT):
            await self._ready.wait()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(channel, orjson.dumps(message))

    async def _listen(self) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._ready.set()
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        self._on_message(orjson.loads(item["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis went away: resubscribe
                self._ready.clear()
                log.warning("relay: Redis connection lost (%r); resubscribing", error)
                await asyncio.sleep(0.5)
            finally:
                await _quietly(pubsub.aclose(), "closing the relay's subscription")

    def _on_message(self, message: dict[str, Any]) -> None:
        op, conn = message.get("op"), str(message.get("conn", ""))
        if op == "attach":
            # The link exists from the moment the attach is read: a `gone`
            # right behind it (a client that gave up) must find it.
            link = self._links[conn] = RelayTransport(self, conn, str(message["reply"]))
            self._spawn(self._serve_attach(message, link))
        elif op in ("frame", "gone") and conn in self._links:
            self._links[conn].deliver(message["text"] if op == "frame" else _GONE)
        elif op in ("attaching", "frame", "close", "lost") and conn in self._waiting:
            queue = self._waiting[conn]
            if queue.qsize() >= MAX_QUEUED:
                queue.put_nowait({"op": "close", "code": 4009, "reason": "relay overflow"})
            else:
                queue.put_nowait(message)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- holding a session: serve an attach from another worker ---------------------------

    async def _serve_attach(self, message: dict[str, Any], link: RelayTransport) -> None:
        conn, reply = str(message["conn"]), str(message["reply"])
        try:
            registry = self.apps.get(str(message.get("app")))
            session, reason = (None, LostReason.UNKNOWN) if registry is None else registry.find(
                str(message["token"]), str(message["binding"]))
            if session is None:
                await self.publish(reply, {"op": "lost", "conn": conn, "reason": reason.value})
                return
            await self.publish(reply, {"op": "attaching", "conn": conn})
            self.stats["attached_here"] += 1
            lost = await session.resume(link, int(message["lastSeq"]))
            if lost is not None:
                await self.publish(reply, {"op": "lost", "conn": conn, "reason": lost.value})
        except (ConnectionError, asyncio.CancelledError) as exc:
            log.debug("relay %s ended: %r", conn, exc)  # detached again, or stopping
        finally:
            del self._links[conn]

    # -- relaying a client to the worker that holds its session --------------------------

    async def relay(self, app_key: str, token: str, last_seq: int, binding: str,
                    transport: Transport) -> LostReason | None:
        holder = await self._redis.get(_directory_key(self.prefix, token))
        if holder is None:
            return LostReason.UNKNOWN
        holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        conn = secrets.token_hex(8)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._waiting[conn] = queue
        try:
            await self.publish(holder, {"op": "attach", "conn": conn, "reply": self.channel,
                                        "app": app_key, "token": token, "lastSeq": last_seq,
                                        "binding": binding})
            try:
                async with asyncio.timeout(ATTACH_TIMEOUT):
                    first = await queue.get()
                if first["op"] == "attaching":
                    async with asyncio.timeout(ATTACHING_TIMEOUT):
                        first = await queue.get()
            except TimeoutError:
                self.stats["unreachable"] += 1
                # Should it answer after all, its session must not wait on us.
                await _quietly(self.publish(holder, {"op": "gone", "conn": conn}),
                               "telling a late holder its client left")
                return LostReason.UNREACHABLE
            if first["op"] == "lost":
                return LostReason(first["reason"])
            self.stats["relayed_out"] += 1
            # Not back into the queue: what arrived since would overtake it.
            await self._pipe(conn, holder, first, queue, transport)
            return None
        finally:
            del self._waiting[conn]

    async def _pipe(self, conn: str, holder: str, first: dict[str, Any],
                    queue: asyncio.Queue[Any], transport: Transport) -> None:
        async def upstream() -> None:
            while True:
                data = await transport.receive()
                text = data.decode() if isinstance(data, bytes) else data
                await self.publish(holder, {"op": "frame", "conn": conn, "text": text})

        async def downstream() -> None:
            message = first
            while message["op"] == "frame":
                await transport.send(message["text"])
                message = await queue.get()
            # the session closed the connection
            await transport.close(int(message.get("code", 1000)), str(message.get("reason", "")))

        up = asyncio.create_task(upstream())
        down = asyncio.create_task(downstream())
        try:
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            # However it ended, the holder learns the client is gone.
            await asyncio.shield(_quietly(self.publish(holder, {"op": "gone", "conn": conn}),
                                          "telling the holder its client left"))

    # -- the directory -------------------------------------------------------------------

    async def announce(self, token: str) -> None:
        await self._redis.set(_directory_key(self.prefix, token), self.channel,
                              ex=DIRECTORY_TTL)

    async def withdraw(self, token: str) -> None:
        await self._redis.delete(_directory_key(self.prefix, token))


class AppRelay:
    """The relay as one app's registry sees it
    (:class:`~quartdash.session.registry.RemoteSessions`)."""

    def __init__(self, relay: RedisRelay, app_key: str) -> None:
        self.relay = relay
        self.app_key = app_key

    async def attach(self, token: str, last_seq: int, binding: str,
                     transport: Transport) -> LostReason | None:
        from redis.exceptions import RedisError  # relay_for() made us: redis-py is there

        try:
            await self.relay.start()
            return await self.relay.relay(self.app_key, token, last_seq, binding, transport)
        except (OSError, TimeoutError, RedisError) as error:  # Redis is unreachable
            log.warning("relay: cannot reach Redis to resume a session held elsewhere: %r",
                        error)
            self.relay.stats["unreachable"] += 1
            return LostReason.UNREACHABLE

    def announce(self, token: str) -> None:
        self.relay._spawn(self._announce(token))

    def withdraw(self, token: str) -> None:
        self.relay._spawn(self._withdraw(token))

    async def _announce(self, token: str) -> None:
        try:
            await self.relay.start()
            await self.relay.announce(token)
        except Exception as error:
            log.warning("relay: could not record a session token in Redis: %r", error)

    async def _withdraw(self, token: str) -> None:
        try:
            await self.relay.withdraw(token)
        except Exception as error:
            log.debug("relay: could not remove a session token from Redis: %r", error)


async def _quietly(coro: Any, what: str) -> None:
    """Clean-up on a connection that may be broken: failures are logged, not raised."""
    try:
        await coro
    except Exception as error:
        log.debug("relay: %s failed: %r", what, error)


def _directory_key(prefix: str, token: str) -> str:
    return f"{prefix}:relay:token:{hashlib.sha256(token.encode()).hexdigest()}"


_relays: dict[tuple[int, str, str], RedisRelay] = {}


def relay_for(app_key: str, registry: SessionRegistry) -> AppRelay | None:
    """The relay for an app's sessions when broadcast is configured with Redis."""
    from . import default_hub

    hub = default_hub()
    if hub.backend_name != "redis":
        return None
    loop = asyncio.get_running_loop()
    key = (id(loop), hub.url, hub.prefix)
    relay = _relays.get(key)
    if relay is None:
        relay = _relays[key] = RedisRelay(hub.url, hub.prefix)
    return relay.for_app(app_key, registry)


def relay_stats() -> dict[str, int]:
    """This process's relay counters: resumes it served for clients connected
    to other workers (``attached_here``), clients it relayed to another
    worker (``relayed_out``), holders that did not answer (``unreachable``)."""
    totals = {"attached_here": 0, "relayed_out": 0, "unreachable": 0}
    for relay in _relays.values():
        for name, count in relay.stats.items():
            totals[name] += count
    return totals
