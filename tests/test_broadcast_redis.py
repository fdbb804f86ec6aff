"""quartdash.broadcast through Redis: worker processes that share one real redis-server.

"Two workers" is exercised both ways: two hypercorn processes on two ports
(deterministic: we know which serves which connection), and one
``--workers 2`` server, hypercorn, uvicorn and granian each (each tab learns
its worker's pid from the server).
The last test kills Redis mid-stream, restarts it, and checks delivery resumes.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from typing import Any

import pytest

from quartdash.testing import DashClient, TestRenderer
from tests.helpers import SERVERS
from tests.test_broadcast import (
    close_all,
    open_tabs,
    post,
    stats,
    wait_appended,
    wait_stats,
)

pytestmark = pytest.mark.redis

APP = "tests.apps.broadcast_app:asgi"
CHART = "examples.broadcast_chart:asgi"
FEED_CHANNEL = "quartdash:topic:feed"


def redis_env(redis_server: Any, **extra: str) -> dict[str, str]:
    return {"QUARTDASH_BROADCAST_URL": redis_server.url, **extra}


def numsub(redis_server: Any, channel: str) -> int:
    client = redis_server.client()
    try:
        [(_, count)] = client.pubsub_numsub(channel)
        return int(count)
    finally:
        client.close()


async def worker_of(tab: TestRenderer) -> int:
    return int((await tab.wait_for_push("worker", "children"))[0].value)


async def test_publish_on_one_worker_reaches_tabs_on_the_other(serve_app: Any,
                                                               redis_server: Any) -> None:
    env = redis_env(redis_server)
    a, b = serve_app(APP, env=env), serve_app(APP, env=env)
    clients_a, tabs_a = await open_tabs(a.url, 3)
    clients_b, tabs_b = await open_tabs(b.url, 2, tabs_per_connection=2)
    clients, tabs = clients_a + clients_b, tabs_a + tabs_b
    try:
        control_a, control_b = clients_a[0], clients_b[0]
        assert (await stats(control_a))["worker"] != (await stats(control_b))["worker"]
        await wait_stats(control_a, "3 subscriptions on A", lambda s: s["subscriptions"] == 3)
        await wait_stats(control_b, "4 subscriptions on B", lambda s: s["subscriptions"] == 4)
        # One Redis subscription per process for the topic, not one per tab.
        assert numsub(redis_server, FEED_CHANNEL) == 2

        messages = [{"n": n} for n in range(60)]
        await post(control_a, "/publish", {"messages": messages[:30]})
        await post(control_b, "/publish", {"messages": messages[30:]})
        for tab in tabs:
            assert await wait_appended(tab, 60) == messages

        # Shared state, encoded once by the publisher: topic members, then the app.
        await post(control_b, "/props", {"to": "feed", "component": "state",
                                         "props": {"children": "from B"}})
        await post(control_a, "/props", {"to": "app", "component": "banner",
                                         "props": {"children": "from A"}})
        for tab in tabs:
            await tab.wait_for_push("state", "children", where=lambda v: v == "from B")
            await tab.wait_for_push("banner", "children", where=lambda v: v == "from A")
        assert (await stats(control_a))["props_encoded"] == 1
        assert (await stats(control_b))["props_encoded"] == 1

        # A tab opened later on B starts from the app state A published (B
        # kept it); so does a tab on a worker started after the publish (it
        # reads the state Redis kept when it subscribes).
        late_clients, (late,) = await open_tabs(b.url, 1)
        clients += late_clients
        await late.wait_for_push("banner", "children", where=lambda v: v == "from A")
        c = serve_app(APP, env=env)
        newcomer_clients, (newcomer,) = await open_tabs(c.url, 1)
        clients += newcomer_clients
        await newcomer.wait_for_push("banner", "children", where=lambda v: v == "from A")
    finally:
        await close_all(clients)
    for server in (a, b, c):
        async with DashClient(server.url) as control:
            await wait_stats(control, "no subscription left",
                             lambda s: s["subscriptions"] == 0 and s["members"] == 0)
    # ...and every process unsubscribed from the topic in Redis.
    deadline = time.monotonic() + 5
    while numsub(redis_server, FEED_CHANNEL):
        assert time.monotonic() < deadline, "a worker kept its Redis subscription"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("server_name", SERVERS)
async def test_two_workers_share_the_stream(serve_app: Any, redis_server: Any,
                                            server_name: str) -> None:
    server = serve_app(APP, env=redis_env(redis_server), workers=2, server=server_name)
    clients: list[DashClient] = []
    by_worker: dict[int, list[TestRenderer]] = {}
    try:
        # The kernel hands connections to either worker: open tabs until
        # both have some (bounded).
        for _ in range(60):
            more, (tab,) = await open_tabs(server.url, 1)
            clients += more
            by_worker.setdefault(await worker_of(tab), []).append(tab)
            if len(by_worker) == 2 and min(len(t) for t in by_worker.values()) >= 2:
                break
        assert len(by_worker) == 2, f"every connection went to one worker: {by_worker.keys()}"
        deadline = time.monotonic() + 5
        while numsub(redis_server, FEED_CHANNEL) != 2:
            assert time.monotonic() < deadline, "the workers did not both subscribe"
            await asyncio.sleep(0.05)

        # Each publish request is handled by one worker; every tab on both gets it.
        messages = [f"m{n}" for n in range(20)]
        handled_by = set()
        for start in range(0, 20, 2):
            handled_by.add((await post(clients[0], "/publish",
                                       {"messages": messages[start:start + 2]}))["worker"])
        for tabs in by_worker.values():
            for tab in tabs:
                assert await wait_appended(tab, 20) == messages
        assert handled_by <= set(by_worker)
    finally:
        await close_all(clients)


# ---------------------------------------------------------------- Redis dies mid-stream


def points(tab: TestRenderer) -> list[tuple[str, float]]:
    """(timestamp, value) pairs the tab's chart received through Patch appends."""
    xs: list[str] = []
    ys: list[float] = []
    for push in tab.pushes_to("chart", "figure"):
        for operation in push.value["operations"]:
            if operation["operation"] != "Append":
                continue
            (xs if operation["location"][-1] == "x" else ys).append(operation["params"]["value"])
    return list(zip(xs, ys, strict=False))


def producers(tab: TestRenderer) -> set[int]:
    found = set()
    for push in tab.pushes_to("last", "children"):
        match = re.search(r"produced by worker (\d+)", push.value)
        assert match, push.value
        found.add(int(match.group(1)))
    return found


async def wait_points(tab: TestRenderer, what: str, predicate: Any, timeout: float) -> None:
    await tab.client.wait_for(lambda: predicate(points(tab)), what, timeout)


async def test_example_chart_survives_a_redis_restart(serve_app: Any, redis_server: Any) -> None:
    env = redis_env(redis_server, BROADCAST_CHART_PERIOD="0.05")
    a, b = serve_app(CHART, env=env), serve_app(CHART, env=env)
    clients_a, (tab_a,) = await open_tabs(a.url, 1)
    clients_b, (tab_b,) = await open_tabs(b.url, 1)
    clients = clients_a + clients_b
    try:
        for tab in (tab_a, tab_b):
            await wait_points(tab, "10 points", lambda p: len(p) >= 10, timeout=10)
        # One producer for both workers: the same points on both tabs, from one pid.
        common = set(points(tab_a)) & set(points(tab_b))
        assert len(common) >= 5
        assert len(producers(tab_a) | producers(tab_b)) == 1

        redis_server.kill()
        killed_at = max(p[0] for p in points(tab_a) + points(tab_b))
        await asyncio.sleep(1.0)  # 20 ticks published into the void
        redis_server.start()
        restarted_at = time.monotonic()

        # Both workers reconnect and resubscribe; points flow again on both tabs.
        for tab in (tab_a, tab_b):
            await wait_points(tab, "points after the restart",
                              lambda p, k=killed_at: sum(x > k for x, _ in p) >= 10,
                              timeout=15)
        resumed_after = time.monotonic() - restarted_at
        assert resumed_after < 10

        # What was published while Redis was down is lost, not replayed: a gap.
        after = sorted(x for x, _ in points(tab_a) if x > killed_at)
        gap = (_seconds(after[0]) - _seconds(killed_at))
        assert gap > 0.5
        # ...and the tabs still see one and the same stream.
        newest_a = {p for p in points(tab_a) if p[0] > killed_at}
        newest_b = {p for p in points(tab_b) if p[0] > killed_at}
        assert len(newest_a & newest_b) >= 5

        # Shared state through the restarted Redis: an announcement made on B
        # shows on both workers' tabs.
        response = await asyncio.to_thread(http_post, b.http_url("/announce"),
                                           b"after the restart")
        served_by_a = (await tab_a.wait_for_push("served-by", "children"))[0].value
        assert str(response["worker"]) not in served_by_a  # announced on the other worker
        for tab in (tab_a, tab_b):
            await tab.wait_for_push("banner", "children",
                                    where=lambda v: v == "after the restart", timeout=5)
    finally:
        await close_all(clients)


def http_post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        assert response.status == 200 and body, (response.status, dict(response.headers), body)
        return json.loads(body)


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()

