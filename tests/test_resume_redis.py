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

import pytest

from quartdash.testing import DashClient
from tests.helpers import connect_placed, from_every_worker
from tests.helpers.proxy import FaultProxy
from tests.test_resume import appended, exactly_counting

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
