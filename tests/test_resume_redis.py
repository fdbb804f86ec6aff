"""Resume across workers: hypercorn -w 2 and a real redis-server.

A client that lost its socket reconnects to whichever worker the kernel
hands the connection to. The session stays on the worker that holds it;
the other relays through Redis (quartdash/broadcast/relay.py). These tests
drop and resume until both cases happened (a resume served where the
session lives, and one relayed from the other worker), and check the
streams are exactly 1..N. Without Redis a resume on the other worker gets
the explicit signal; a holder that is gone reports ``unreachable``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from quartdash.testing import DashClient
from tests.helpers import connect_placed, from_every_worker
from tests.helpers.proxy import FaultProxy
from tests.test_resume import appended, exactly_counting
from tests.test_session import FakeTransport, until

pytestmark = pytest.mark.redis

APP = "tests.apps.resume_app:asgi"


async def worker_stats(server: Any) -> dict[int, dict[str, Any]]:
    """Every worker's stats (requests land on either worker: both are asked)."""
    return await from_every_worker(server.http_url("/_resume/stats"),
                                   workers=server.workers, key="pid")


def relays(stats: dict[int, dict[str, Any]]) -> dict[str, int]:
    total = {"attached_here": 0, "relayed_out": 0, "unreachable": 0}
    for one in stats.values():
        for name, count in one["relay"].items():
            total[name] += count
    return total


async def holder_pid(tab: Any) -> int:
    result = await tab.call("holder.children", inputs={"who-btn.n_clicks": 1})
    return int(result.output("holder", "children"))


async def resume(server: Any, client: DashClient, *, elsewhere: bool) -> str | None:
    """``elsewhere``: away from the worker the kernel would pick for a request now."""
    return await connect_placed(client.resume, server.http_url("/_resume/stats"),
                                elsewhere=elsewhere)


async def test_resumes_land_on_both_workers_and_lose_nothing(serve_app: Any,
                                                             redis_server: Any) -> None:
    server = serve_app(APP, env={"QUARTDASH_BROADCAST_URL": redis_server.url,
                                 "RESUME_TIMEOUT": "15"}, workers=2,
                       ready_path="/_resume/stats")
    async with DashClient(server.url + "/", resumable=True) as client:
        tab = await client.open_renderer()
        holder = await holder_pid(tab)
        pending = await tab.start("count-done.children", inputs={"count-btn.n_clicks": 1})
        relayed = local = 0
        for attempt in range(30):  # until both kinds happened
            await asyncio.sleep(0.3)
            before = relays(await worker_stats(server))["relayed_out"]
            await client.drop()
            assert await resume(server, client, elsewhere=attempt % 2 == 1) is None
            after = relays(await worker_stats(server))["relayed_out"]
            relayed += after > before
            local += after == before
            assert await holder_pid(tab) == holder  # the session never moved
            if relayed >= 2 and local >= 1:
                break
        assert relayed >= 2 and local >= 1, (relayed, local)
        await asyncio.sleep(0.5)
        ticks, counts = appended(tab, "ticks"), appended(tab, "counts")
        assert exactly_counting(ticks) and len(ticks) > 10, ticks
        assert exactly_counting(counts) and len(counts) > 10, counts
    stats = await worker_stats(server)
    started = sum(s["counters"].get("ticker_started", 0) for s in stats.values())
    assert started == 1  # one instance, on the holder
    assert not pending.done() or (await pending.result()).ok


async def test_without_redis_another_worker_signals_the_loss(serve_app: Any) -> None:
    server = serve_app(APP, env={"RESUME_TIMEOUT": "15"}, workers=2,
                       ready_path="/_resume/stats")
    async with DashClient(server.url + "/", resumable=True) as client:
        tab = await client.open_renderer()
        holder = await holder_pid(tab)
        outcomes = set()
        for attempt in range(30):
            await client.drop()
            reason = await resume(server, client, elsewhere=attempt % 2 == 1)
            outcomes.add(reason)
            if reason is not None:
                assert reason == "unknown"
                # A fresh session on the other worker: the tab starts over there.
                await tab.join()
                assert await holder_pid(tab) != holder
                break
        assert "unknown" in outcomes


async def test_a_holder_that_died_is_unreachable(serve_app: Any, redis_server: Any) -> None:
    """Two servers behind one Redis and one proxy (two machines behind a load
    balancer): the one holding the session is killed; a resume on the other
    finds the token but no answer."""
    env = {"QUARTDASH_BROADCAST_URL": redis_server.url, "RESUME_TIMEOUT": "15"}
    holder = serve_app(APP, env=env, ready_path="/_resume/stats")
    other = serve_app(APP, env=env, ready_path="/_resume/stats")
    proxy = await FaultProxy(holder.port).start()
    try:
        async with DashClient(proxy.url, resumable=True) as client:
            await client.open_renderer()
            await client.drop()
            await asyncio.sleep(0.3)  # the token is in the directory
            holder.kill()
            proxy.retarget(other.port)
            assert await client.resume(timeout=15) == "unreachable"
    finally:
        await proxy.close()
    assert relays(await worker_stats(other))["unreachable"] == 1


class _BusyHolderSession:
    """A session whose worker is slow to take it over (its old socket's end
    still to notice, its loop busy): it answers after ``delay`` s, then
    sends ``FRAMES`` at once and closes."""

    FRAMES = [f'{{"seq":{n}}}' for n in range(1, 21)]

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def resume(self, link: Any, last_seq: int) -> None:
        await asyncio.sleep(self.delay)
        # In one Redis round trip, in order: they reach the relaying worker
        # together, as when its loop was busy while they came.
        async with link._relay._redis.pipeline(transaction=False) as pipe:
            for frame in self.FRAMES:
                pipe.publish(link._reply, orjson.dumps({"op": "frame", "conn": link._conn,
                                                        "text": frame}))
            await pipe.execute()
        await link.close(1000, "done")


class _Registry:
    def __init__(self, session: Any) -> None:
        self.session = session

    def find(self, token: str, binding: str) -> tuple[Any, Any]:
        return self.session, None


async def test_a_busy_holder_that_answered_attaching_gets_its_time(
        redis_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers' relays on one real Redis: the holder needs longer than
    ATTACH_TIMEOUT to resume, but said ``attaching`` at once, so the client
    is resumed, not told ``unreachable``, and gets every frame in order. A
    holder that says nothing is unreachable."""
    from quartdash.broadcast import relay as relay_module

    monkeypatch.setattr(relay_module, "ATTACH_TIMEOUT", 0.3)
    holder = relay_module.RedisRelay(redis_server.url, "qd-test")
    other = relay_module.RedisRelay(redis_server.url, "qd-test")
    try:
        holder.apps["app"] = _Registry(_BusyHolderSession(delay=0.8))  # type: ignore[assignment]
        await holder.start()
        await other.start()
        await holder.announce("token-1")
        client = FakeTransport()  # the relaying worker's end of the client's socket
        assert await other.relay("app", "token-1", 0, "binding", client) is None
        # Every frame, in order: the first one read is not put behind the others.
        assert client.sent == [orjson.loads(frame) for frame in _BusyHolderSession.FRAMES]
        assert client.closed_with == (1000, "done")
        assert other.stats["relayed_out"] == 1 and other.stats["unreachable"] == 0

        holder.apps.clear()  # a holder that hears the attach but never answers
        silent = FakeTransport()
        holder._on_message = lambda message: None  # type: ignore[method-assign]
        assert await other.relay("app", "token-1", 0, "binding", silent) == "unreachable"
        assert other.stats["unreachable"] == 1
    finally:
        await _close_relays(holder, other)


class _ListeningSession:
    """A session resumed on a relayed link that only reads from it."""

    def __init__(self) -> None:
        self.ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def resume(self, link: Any, last_seq: int) -> None:
        try:
            await link.receive()
        except ConnectionError as error:
            self.ended.set_result(error)
            raise


async def test_a_client_gone_right_behind_its_attach_reaches_the_session(
        redis_server: Any) -> None:
    """The relaying worker gave up (its client left, or it timed out) and said
    ``gone`` just after ``attach``: a busy holder reads both in one burst,
    before it starts serving the attach. The session it resumes on that
    link must learn the client is gone, not wait on a dead link."""
    from quartdash.broadcast import relay as relay_module

    holder = relay_module.RedisRelay(redis_server.url, "qd-test")
    try:
        session = _ListeningSession()
        holder.apps["app"] = _Registry(session)  # type: ignore[assignment]
        await holder.start()
        attach = {"op": "attach", "conn": "c1", "reply": "qd-test:nobody", "app": "app",
                  "token": "t", "lastSeq": 0, "binding": "b"}
        holder._on_message(attach)
        holder._on_message({"op": "gone", "conn": "c1"})
        error = await asyncio.wait_for(session.ended, timeout=3)
        assert "went away" in str(error)
        await until(lambda: "c1" not in holder._links)
    finally:
        await _close_relays(holder)


async def _close_relays(*relays: Any) -> None:
    """Stop relays made by a test: their listening task, their Redis client."""
    for relay in relays:
        if relay._reader is not None:
            relay._reader.cancel()
            await asyncio.gather(relay._reader, return_exceptions=True)
        await relay._redis.aclose()

