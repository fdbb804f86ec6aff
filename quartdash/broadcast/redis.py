"""The Redis backend: fan-out across worker processes and machines (pub/sub).

One subscriber connection per process carries every channel that process
listens to (one ``SUBSCRIBE`` per topic per process, shared by all local
subscribers and sessions); publishes go over a small connection pool.

Outages. When Redis goes away the reader reconnects with bounded exponential
back-off (50 ms doubling to 2 s, with jitter) and subscribes again to every
channel still wanted. What is published while the link is down is **lost**,
not buffered: a publish that fails is dropped and counted (``stats()``), and
for a short back-off after a failure publishes are dropped at once rather
than waiting on a dead server. A live feed's next value supersedes the lost
ones; retained ``set_props`` state is re-read from Redis on resubscribe.

Retained state is a Redis hash per channel (``<prefix>:state:<channel>``),
written together with each ``PUBLISH``; it has no persistence of its own
beyond Redis's (a restarted, empty Redis forgets it; the workers still hold
their copies).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import orjson

from ..wire import protocol

try:
    import redis.asyncio as aioredis
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ModuleNotFoundError as _missing:
    if _missing.name is None or _missing.name.split(".")[0] != "redis":
        raise
    raise ModuleNotFoundError(
        "a redis:// broadcast URL (QUARTDASH_BROADCAST_URL or broadcast.configure) needs "
        'redis-py, which is not installed: pip install "quartdash[redis]" '
        '(in a checkout: pip install -e ".[redis]")',
        name=_missing.name,
    ) from _missing

from .backend import RETAIN_TTL, Deliver, OnRetained, OnSubscribed, Retained
from .envelope import MESSAGE_TAG, Envelope, EnvelopeError, PropsUpdate, decode, encode
from .presence import LEAVE_PREFIX, LEAVE_SUFFIX

log = logging.getLogger("quartdash.broadcast")

MIN_BACKOFF = 0.05
MAX_BACKOFF = 2.0
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
HEALTH_INTERVAL = 10.0  # PING the subscriber link after this long without traffic

# Take the lease, renew it if we hold it, or take it again if it vanished
# (a restarted Redis): 1 = ours for ttl ms, 0 = somebody else's.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Presence (docs/live-sessions.md). A topic's entries are a hash (field
# "<worker>/<session>/<tab>", value the entry's JSON); each worker's deadline
# (Redis server time, ms) is its score in one sorted set. An entry counts
# while its worker's deadline has not passed; whoever reads or sweeps a topic
# deletes the others and publishes a leave event for each.
PRESENCE_KEEP_MS = 24 * 3600 * 1000  # an untouched hash, a long-dead worker: forgotten
# Presence commands in flight at once per worker: a burst of joins (a restart
# bringing every tab back) must not open a Redis connection per tab.
PRESENCE_CONCURRENCY = 4

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: workers, hash. ARGV: worker, ttl ms, field, value, channel, event, keep ms.
_PRESENCE_PUT = _NOW + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""

# KEYS: hash. ARGV: field, channel, event.
_PRESENCE_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
"""

# KEYS: workers, hash. ARGV: channel, leave-event prefix, leave-event suffix.
# Returns the live entries; deletes (and announces the leaving of) the rest.
_PRESENCE_SWEEP = _NOW + """
local all = redis.call('HGETALL', KEYS[2])
local alive = {}
local live = {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  local worker = string.match(field, '^([^/]+)/') or ''
  local ok = alive[worker]
  if ok == nil then
    local deadline = redis.call('ZSCORE', KEYS[1], worker)
    ok = (deadline and tonumber(deadline) >= now) or false
    alive[worker] = ok
  end
  if ok then
    live[#live + 1] = value
  else
    redis.call('HDEL', KEYS[2], field)
    redis.call('PUBLISH', ARGV[1], ARGV[2] .. value .. ARGV[3])
  end
end
return live
"""

# KEYS: workers, then hashes to keep. ARGV: worker, ttl ms, keep ms.
# 1 when the worker was taken for dead (or unknown): it must write its entries again.
_PRESENCE_HEARTBEAT = _NOW + """
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
if (not old) or tonumber(old) < now then return 1 end
return 0
"""


def _field(key: tuple[str, str]) -> bytes:
    return protocol.dumps(list(key))


class RedisBackend:
    """A :class:`~quartdash.broadcast.backend.Backend` shared through Redis:
    every worker and machine on the same server and prefix."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        deliver: Deliver,
        on_subscribed: OnSubscribed,
        on_retained: OnRetained,
        presence_ttl: float = 5.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.presence_ttl: float | None = presence_ttl
        self._deliver = deliver
        self._on_subscribed = on_subscribed
        self._on_retained = on_retained
        # No retries inside redis-py: failures surface here, where the
        # reconnect policy (and the "lost while down" rule) lives.
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self._lease_script = self._client.register_script(_LEASE)
        self._release_script = self._client.register_script(_RELEASE)
        self._put_script = self._client.register_script(_PRESENCE_PUT)
        self._remove_script = self._client.register_script(_PRESENCE_REMOVE)
        self._sweep_script = self._client.register_script(_PRESENCE_SWEEP)
        self._heartbeat_script = self._client.register_script(_PRESENCE_HEARTBEAT)
        self._presence_scripts = (self._put_script, self._remove_script, self._sweep_script,
                                  self._heartbeat_script)
        self._presence_gate: asyncio.Semaphore | None = None
        self._presence_loaded = False
        self._wanted: set[str] = set()
        self._requested: set[str] = set()  # SUBSCRIBE sent on the current link
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE exchange at a time
        self._kick = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._link_up = False
        self._backing_off = False  # between a failure and the next connect attempt
        self._publish_backoff = MIN_BACKOFF
        self._publish_blocked_until = 0.0
        self.stats = {"published": 0, "dropped": 0, "reconnects": 0}

    @property
    def connected(self) -> bool:
        """True while the subscriber link is up."""
        return self._link_up

    def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_loop(), name="quartdash-broadcast-redis")

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, channel: str, envelope: Envelope, *, strict: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._publish_blocked_until and not strict:
            self.stats["dropped"] += 1
            return
        data = encode(envelope)
        try:
            if isinstance(envelope, PropsUpdate):
                await self._publish_props(channel, envelope, data)
            else:
                await self._client.publish(channel, data)
        except (RedisError, OSError) as error:
            if strict:
                raise ConnectionError(f"broadcast: publish to {channel} failed: {error!r}"
                                      ) from error
            self.stats["dropped"] += 1
            self._publish_blocked_until = loop.time() + self._publish_backoff
            if self._publish_backoff == MIN_BACKOFF:  # log the first failure of an outage
                log.warning("broadcast: publish to %s failed, dropping (%r)", channel, error)
            self._publish_backoff = min(self._publish_backoff * 2, MAX_BACKOFF)
            return
        self._publish_backoff = MIN_BACKOFF
        self.stats["published"] += 1

    async def _publish_props(self, channel: str, update: PropsUpdate, data: bytes) -> None:
        keep: dict[bytes, bytes] = {}
        forget: list[bytes] = []
        for item in update.items:
            field = _field((update.component_id, item.prop))
            if update.retain and not item.is_patch:
                keep[field] = item.payload
            else:
                forget.append(field)
        state_key = self._state_key(channel)
        # Not a transaction, but one connection: Redis runs them in this order,
        # so a reader that sees the PUBLISH finds the hash already updated.
        async with self._client.pipeline(transaction=False) as pipe:
            if keep:
                pipe.hset(state_key, mapping=keep)  # type: ignore[arg-type]
                pipe.expire(state_key, int(RETAIN_TTL))  # forgotten a day after the last write
            if forget:
                pipe.hdel(state_key, *forget)
            pipe.publish(channel, data)
            await pipe.execute()

    def _state_key(self, channel: str) -> str:
        return f"{self.prefix}:state:{channel}"

    # -- subscribing --------------------------------------------------------------------

    def want(self, channel: str) -> None:
        if channel in self._wanted:
            return
        self._wanted.add(channel)
        self._kick.set()
        if self._pubsub is not None:
            self._spawn(self._sync())

    def unwant(self, channel: str) -> None:
        if channel not in self._wanted:
            return
        self._wanted.discard(channel)
        if self._pubsub is not None:
            self._spawn(self._sync())

    async def ready(self, channel: str, timeout: float) -> None:
        """Wait until Redis confirmed the subscription; at once while the link is
        down (what is published meanwhile is lost anyway)."""
        if channel in self._confirmed or channel not in self._wanted:
            return
        if self._backing_off:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, []).append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            log.warning("broadcast: no SUBSCRIBE confirmation for %s within %.1f s", channel,
                        timeout)
        finally:
            waiters = self._waiters.get(channel)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[channel]

    async def _sync(self) -> None:
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the reader subscribes to everything wanted when it (re)connects
            add = self._wanted - self._requested
            remove = self._requested - self._wanted
            try:
                if add:
                    self._requested |= add
                    await pubsub.subscribe(*sorted(add))
                if remove:
                    self._requested -= remove
                    self._confirmed -= remove
                    await pubsub.unsubscribe(*sorted(remove))
            except (RedisError, OSError) as error:
                log.debug("broadcast: (un)subscribe failed, the reader will resubscribe: %r",
                          error)

    def _confirm(self, channel: str) -> None:
        self._confirmed.add(channel)
        for future in self._waiters.pop(channel, ()):
            if not future.done():
                future.set_result(None)
        self._on_subscribed(channel)
        self._spawn(self._load(channel))

    async def _load(self, channel: str) -> None:
        try:
            raw = await self._client.hgetall(self._state_key(channel))
        except (RedisError, OSError) as error:
            log.debug("broadcast: could not read retained state of %s: %r", channel, error)
            return
        state: Retained = {}
        for field, payload in raw.items():
            try:
                component_id, prop = orjson.loads(field)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue
            if isinstance(payload, bytes):  # the client does not decode responses
                state[(str(component_id), str(prop))] = payload
        if state:
            self._on_retained(channel, state)

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = MIN_BACKOFF
        while True:
            if not self._wanted:
                self._kick.clear()
                await self._kick.wait()
                continue
            pubsub = self._client.pubsub()
            try:
                async with self._lock:
                    self._pubsub = pubsub  # before the await: want() now goes through _sync
                    channels = sorted(self._wanted)
                    self._requested = set(channels)
                    await pubsub.subscribe(*channels)
                self._link_up = True
                if self.stats["reconnects"]:
                    log.warning("broadcast: reconnected to Redis at %s; resubscribed %d "
                                "channel(s)", self.url, len(channels))
                last_heard = loop.time()
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_INTERVAL)
                    now = loop.time()
                    if message is None:
                        if now - last_heard > 2 * HEALTH_INTERVAL:
                            raise TimeoutError("the Redis link answers no PING")
                        await pubsub.ping()
                        continue
                    last_heard = now
                    kind = message["type"]
                    channel = message.get("channel")
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    if kind == "message":
                        self._on_message(channel, message["data"])
                    elif kind == "subscribe":
                        delay = MIN_BACKOFF
                        self._confirm(channel)
                    elif kind == "unsubscribe":
                        self._confirmed.discard(channel)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as error:
                if self._link_up or delay == MIN_BACKOFF:  # once per outage, then quietly
                    log.warning("broadcast: Redis at %s unreachable (%r); retrying, and "
                                "dropping what is published meanwhile", self.url, error)
                else:
                    log.debug("broadcast: Redis at %s still unreachable (%r)", self.url, error)
            finally:
                self._link_up = False
                self._pubsub = None
                self._requested.clear()
                self._confirmed.clear()
                for waiters in self._waiters.values():
                    for future in waiters:  # release join()/subscribe() waiting on a dead link
                        if not future.done():
                            future.set_result(None)
                await _close_quietly(pubsub)
            self.stats["reconnects"] += 1
            self._backing_off = True
            try:
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            finally:
                self._backing_off = False
            delay = min(delay * 2, MAX_BACKOFF)

    def _on_message(self, channel: str, data: bytes) -> None:
        try:
            envelope = decode(data)
        except EnvelopeError as error:
            log.warning("broadcast: ignoring a foreign message on %s: %s", channel, error)
            return
        self._deliver(channel, envelope)

    # -- leases (run_exclusive) ------------------------------------------------------------

    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        """True: ours for ``ttl`` s; False: someone else's; None: Redis unreachable."""
        try:
            result = await self._lease_script(keys=[f"{self.prefix}:lease:{name}"],
                                              args=[token, max(1, int(ttl * 1000))])
        except (RedisError, OSError) as error:
            log.debug("broadcast: lease %s: %r", name, error)
            return None
        return bool(result)

    async def release(self, name: str, token: str) -> None:
        try:
            await self._release_script(keys=[f"{self.prefix}:lease:{name}"], args=[token])
        except (RedisError, OSError) as error:
            log.debug("broadcast: releasing lease %s: %r", name, error)

    # -- presence ------------------------------------------------------------------------

    def _workers_key(self) -> str:
        return f"{self.prefix}:presence-workers"

    def _ttl_ms(self) -> int:
        return max(1, int((self.presence_ttl or 0) * 1000))

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        if self._presence_gate is None:
            self._presence_gate = asyncio.Semaphore(PRESENCE_CONCURRENCY)
        try:
            async with self._presence_gate:
                if not self._presence_loaded:
                    # Once, up front: else a burst of first calls all meet NOSCRIPT.
                    for each in self._presence_scripts:
                        await self._client.script_load(each.script)
                    self._presence_loaded = True
                return await script(keys=keys, args=args)
        except (RedisError, OSError) as error:
            raise ConnectionError(f"broadcast: presence: {error!r}") from error

    async def presence_put(self, key: str, field: str, value: bytes, channel: str,
                           event: bytes, worker: str) -> None:
        await self._call(self._put_script, [self._workers_key(), key],
                         [worker, self._ttl_ms(), field, value, channel, MESSAGE_TAG + event,
                          PRESENCE_KEEP_MS])

    async def presence_remove(self, key: str, field: str, channel: str, event: bytes) -> None:
        await self._call(self._remove_script, [key], [field, channel, MESSAGE_TAG + event])

    async def presence_read(self, key: str, channel: str) -> list[bytes]:
        live = await self._call(self._sweep_script, [self._workers_key(), key],
                                [channel, MESSAGE_TAG + LEAVE_PREFIX, LEAVE_SUFFIX])
        return [value for value in live if isinstance(value, bytes)]

    async def presence_sweep(self, key: str, channel: str) -> None:
        await self.presence_read(key, channel)  # the same script: reading sweeps

    async def presence_heartbeat(self, worker: str, keys: list[str]) -> bool:
        result = await self._call(self._heartbeat_script, [self._workers_key(), *keys],
                                  [worker, self._ttl_ms(), PRESENCE_KEEP_MS])
        return bool(result)

    # -- lifecycle ----------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = [t for t in (self._reader, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=COMMAND_TIMEOUT)
        self._reader = None
        try:
            await self._client.aclose()
        except (RedisError, OSError) as error:
            log.debug("broadcast: closing the Redis client: %r", error)


async def _close_quietly(pubsub: Any) -> None:
    try:
        await pubsub.aclose()
    except (RedisError, OSError) as error:
        log.debug("broadcast: closing a broken pubsub: %r", error)
