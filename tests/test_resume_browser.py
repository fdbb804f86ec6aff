"""Lossless resume in Chromium, through a TCP proxy that cuts and stalls.

The page (tests/apps/resume_app.py) shows two ``Patch``-appended streams,
each "1 2 3 ...": a persistent callback's, and an event-triggered
callback's that runs 20 s and returns. Whatever the proxy does, each stream
must end up exactly 1..N in order, each callback started once, and the
event-triggered one returned normally. A server restart, which no session
survives, must reach the page as an explicit signal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect

from tests.helpers import http_get, worker_held
from tests.helpers.proxy import FaultProxy

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

APP = "tests.apps.resume_app:asgi"
# A heartbeat every 0.5 s: a stalled socket is noticed (and resumed) within ~1.5 s.
ENV = {"RESUME_HEARTBEAT_MS": "500", "RESUME_TICK": "0.05", "RESUME_COUNT": "400"}


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split()]


async def stream(page: Page, component: str) -> list[int]:
    return numbers(await page.inner_text(f"#{component}"))


async def stats(server: Any) -> dict[str, Any]:
    response = await asyncio.to_thread(http_get, server.http_url("/_resume/stats"), timeout=5)
    return json.loads(response.body)


@pytest_asyncio.fixture(loop_scope="session")
async def proxied(serve_app: Any) -> AsyncIterator[tuple[Any, FaultProxy]]:
    server = serve_app(APP, env=ENV, ready_path="/_resume/stats")
    proxy = await FaultProxy(server.port).start()
    yield server, proxy
    await proxy.close()


async def run_through_faults(page: Page, proxy: FaultProxy, faults: Any,
                             total: int = 400) -> None:
    await page.goto(proxy.url)
    await page.wait_for_function("document.getElementById('ticks')?.textContent.length > 6")
    await page.click("#count-btn")
    await faults()
    # The event-triggered callback runs total x 50 ms in all, then returns.
    await expect(page.locator("#count-done")).to_have_text(f"counted {total}",
                                                           timeout=45_000)
    await asyncio.sleep(0.3)


async def assert_lossless(page: Page, server: Any) -> None:
    ticks, counts = await stream(page, "ticks"), await stream(page, "counts")
    assert counts == list(range(1, 401)), counts
    assert ticks == list(range(1, len(ticks) + 1)) and len(ticks) > 300, ticks
    counters = (await stats(server))["counters"]
    assert counters["ticker_started"] == 1
    assert counters["count_started"] == 1 and counters["count_returned"] == 1
    assert counters.get("count_cancelled", 0) == 0
    assert await page.inner_text("#continuity") == "continuous"
    assert await page.get_attribute("html", "data-quartdash-continuity") is None


async def test_connections_cut_every_two_seconds_lose_nothing(
        proxied: tuple[Any, FaultProxy], page: Page) -> None:
    server, proxy = proxied

    async def faults() -> None:
        cuts = await proxy.cut_every(2.0, duration=12.0)
        assert cuts >= 5

    await run_through_faults(page, proxy, faults)
    assert proxy.connections >= 6  # the worker came back after every cut
    await assert_lossless(page, server)


async def test_a_five_second_stall_loses_nothing(proxied: tuple[Any, FaultProxy],
                                                 page: Page) -> None:
    server, proxy = proxied

    async def faults() -> None:
        await asyncio.sleep(2.0)
        await proxy.stall(5.0)

    await run_through_faults(page, proxy, faults)
    await assert_lossless(page, server)


async def test_a_server_restart_is_signalled_and_the_page_recovers(
        serve_app: Any, page: Page) -> None:
    first = serve_app(APP, env=ENV, ready_path="/_resume/stats")
    proxy = await FaultProxy(first.port).start()
    try:
        await page.goto(proxy.url)
        await page.evaluate("""() => {
            window.__lost = [];
            window.quartdash.on('continuity-lost', p => window.__lost.push(p.reason));
            window.addEventListener('quartdash:continuity-lost',
                                    e => window.__lost.push('event:' + e.detail.reason));
        }""")
        await page.wait_for_function("document.getElementById('ticks')?.textContent.length > 6")
        await asyncio.to_thread(first.stop)  # SIGTERM: every session ends (1001)
        second = serve_app(APP, env=ENV, ready_path="/_resume/stats")
        proxy.retarget(second.port)
        # The new server knows no session: the page is told, in every way we offer.
        await expect(page.locator("#continuity")).to_have_text("lost: unknown", timeout=20_000)
        assert await page.evaluate("window.__lost") == ["event:unknown", "unknown"]
        assert await page.get_attribute("html", "data-quartdash-continuity") == "lost"
        # ...and recovers: its persistent callback runs again on the new server.
        seen = len(await stream(page, "ticks"))
        await page.wait_for_function(
            "n => document.getElementById('ticks')?.textContent.trim().split(/\\s+/).length > n",
            arg=seen + 5, timeout=10_000)
        assert (await stats(second))["counters"]["ticker_started"] == 1
    finally:
        await proxy.close()


@pytest.mark.redis
async def test_two_workers_and_redis_lose_nothing(serve_app: Any, redis_server: Any,
                                                  page: Page) -> None:
    """hypercorn -w 2: reconnects land on either worker; the one without the
    session relays it through Redis. One cut while the session's worker is
    blocked (the reconnect must land on the other: relayed), one while the
    other is (resumed where it lives), then a 5 s stall."""
    from tests.test_resume_redis import relays, worker_stats

    server = serve_app(APP, env={**ENV, "RESUME_COUNT": "600",
                                 "QUARTDASH_BROADCAST_URL": redis_server.url},
                       workers=2, ready_path="/_resume/stats")
    proxy = await FaultProxy(server.port).start()
    stats_url = server.http_url("/_resume/stats")
    try:
        async def faults() -> None:
            stats = await worker_stats(server)
            holder = next(pid for pid, s in stats.items() if s["sessions"])
            other = next(pid for pid in stats if pid != holder)
            for _ in range(4):  # each cut is placed; a retry only if a worker was slow
                await asyncio.sleep(1.0)
                relayed = relays(stats)["relayed_out"]
                async with worker_held(stats_url, holder if relayed == 0 else other):
                    proxy.cut()
                    await asyncio.sleep(0.6)  # the worker reconnects within 0.15 s
                await asyncio.sleep(0.5)
                stats = await worker_stats(server)
                resumed = sum(s["counters"].get("resumed", 0) for s in stats.values())
                relayed = relays(stats)["relayed_out"]
                if relayed >= 1 and resumed - relayed >= 1:
                    await proxy.stall(5.0)
                    return
            raise AssertionError(f"reconnects did not land on both workers: {stats}")

        await run_through_faults(page, proxy, faults, total=600)
        ticks, counts = await stream(page, "ticks"), await stream(page, "counts")
        stats = await worker_stats(server)
        seen = (stats, await page.inner_text("#continuity"))
        assert counts == list(range(1, 601)), (counts, seen)
        assert ticks == list(range(1, len(ticks) + 1)), (ticks, seen)
        counters = [s["counters"] for s in stats.values()]
        assert sum(c.get("ticker_started", 0) for c in counters) == 1
        assert sum(c.get("count_started", 0) for c in counters) == 1
        assert sum(c.get("count_returned", 0) for c in counters) == 1
        assert await page.inner_text("#continuity") == "continuous"
    finally:
        await proxy.close()
