"""Identity, revoke and presence across worker processes: ``hypercorn -w 2``
and a real redis-server (tests/apps/sessions_app.py), driven over real sockets
by DashClient and, for what a browser does after a revoke, by Chromium.

The kernel hands each connection to either worker, so every test opens
connections until it has what it needs on both (bounded); each tab learns
its worker's pid from the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from quartdash.broadcast.presence import DEFAULT_TTL
from quartdash.testing import DashClient, TestRenderer
from tests.helpers import connect_placed, from_every_worker, http_get, one_worker_held, open_page

pytestmark = pytest.mark.redis

APP = "tests.apps.sessions_app:asgi"
# Connections opened at most while looking for a spread over both workers.
ATTEMPTS = 60


def env_of(redis_server: Any, **extra: str) -> dict[str, str]:
    return {"QUARTDASH_BROADCAST_URL": redis_server.url, **extra}


async def get(server: Any, path: str) -> Any:
    response = await asyncio.to_thread(http_get, server.http_url(path), timeout=5)
    assert response.status == 200, (path, response.status, response.body[:300])
    return json.loads(response.body)


def _post(url: str) -> Any:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def post(server: Any, path: str) -> Any:
    return await asyncio.to_thread(_post, server.http_url(path))


class Tab:
    """One connection (one DashClient) with one tab, as ``user``, on ``worker``."""

    def __init__(self, user: str, client: DashClient, tab: TestRenderer, worker: int) -> None:
        self.user, self.client, self.tab, self.worker = user, client, tab, worker


async def open_tab(server: Any, user: str, *, elsewhere: bool = False) -> Tab:
    """``elsewhere``: away from the worker the kernel would pick for a request now."""
    client = DashClient(server.url, headers={"Cookie": f"user={user}"})
    await connect_placed(client.connect, server.http_url("/sessions"), elsewhere=elsewhere)
    tab = await client.open_renderer()
    worker = int((await tab.wait_for_push("worker", "children"))[0].value)
    return Tab(user, client, tab, worker)


async def spread(server: Any, users: tuple[str, ...], per_worker: int = 1) -> list[Tab]:
    """Open tabs until each user has ``per_worker`` on each of the two workers."""
    tabs: list[Tab] = []
    for attempt in range(ATTEMPTS):
        counts: dict[tuple[str, int], int] = {}
        for tab in tabs:
            counts[(tab.user, tab.worker)] = counts.get((tab.user, tab.worker), 0) + 1
        workers = {tab.worker for tab in tabs}
        missing = [user for user in users
                   if len(workers) < 2 or any(counts.get((user, w), 0) < per_worker
                                              for w in workers)]
        if not missing:
            return tabs
        tabs.append(await open_tab(server, missing[0], elsewhere=attempt % 2 == 1))
    await close_all(tabs)
    raise AssertionError(f"no spread over two workers in {ATTEMPTS} connections")


async def close_all(tabs: list[Tab]) -> None:
    for tab in tabs:
        await tab.client.aclose()


async def until(probe: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


async def present_tabs(server: Any) -> set[tuple[str, str]]:
    return {(entry["identity"]["id"], entry["tab"])
            for entry in (await get(server, "/presence"))["entries"]}


async def test_revoke_on_one_worker_closes_the_other_workers_sockets(serve_app: Any,
                                                                     redis_server: Any) -> None:
    server = serve_app(APP, env=env_of(redis_server), workers=2)
    tabs = await spread(server, ("alice", "bob"))
    try:
        workers = {tab.worker for tab in tabs}
        assert len(workers) == 2
        # Presence lists exactly the open tabs, of both workers, whoever asks.
        expected = {(tab.user, tab.tab.id) for tab in tabs}
        await until(lambda: _equal(present_tabs(server), expected), "every tab present", 5)
        entries = (await get(server, "/presence"))["entries"]
        assert {entry["meta"]["pid"] for entry in entries} == workers
        # Each worker lists its own sessions, with their identities.
        answers = await from_every_worker(server.http_url("/sessions"), workers=2, key="worker")
        listed = {worker: {s["identity"]["id"] for s in answer["sessions"]}
                  for worker, answer in answers.items()}
        assert listed == {w: {"alice", "bob"} for w in workers}

        # Revoke alice on whichever worker takes the request.
        before = await get(server, "/connects")
        started = time.monotonic()
        answer = await post(server, "/revoke?user=alice")
        alice = [tab for tab in tabs if tab.user == "alice"]
        assert answer["closed"] == sum(tab.worker == answer["worker"] for tab in alice)
        elsewhere = [tab for tab in alice if tab.worker != answer["worker"]]
        assert elsewhere, "no alice connection on the other worker"
        for tab in alice:
            assert await tab.client.wait_closed(timeout=2) == (4003, "Revoked")
        latency = time.monotonic() - started
        assert latency < 1.0, f"revoke took {latency:.3f} s to close every socket"
        # Bob's connections on both workers are untouched.
        for tab in tabs:
            if tab.user == "bob":
                await tab.client.heartbeat()
        bob = {(tab.user, tab.tab.id) for tab in tabs if tab.user == "bob"}
        await until(lambda: _equal(present_tabs(server), bob), "alice's tabs to leave", 5)
        after = await get(server, "/connects")
        assert after.get("alice") == before.get("alice")  # nobody came back as alice
    finally:
        await close_all(tabs)
    await until(lambda: _equal(present_tabs(server), set()), "every tab to leave", 5)


async def _equal(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_a_killed_workers_members_leave_within_the_ttl(serve_app: Any,
                                                             redis_server: Any) -> None:
    # hypercorn stops every worker once one dies (the others gracefully), so
    # a separate server on the same Redis watches: another machine, say.
    observer = serve_app(APP, env=env_of(redis_server))
    server = serve_app(APP, env=env_of(redis_server), workers=2)
    watcher = await open_tab(observer, "carol")
    tabs = await spread(server, ("alice", "bob"))
    try:
        await watcher.tab.start("watching.children", inputs={"watch.n_clicks": 1})
        await watcher.tab.wait_for_push("watching", "children", where=lambda v: v == "watching")
        expected = {(tab.user, tab.tab.id) for tab in [*tabs, watcher]}
        await until(lambda: _equal(present_tabs(observer), expected), "every tab present", 5)

        victim = tabs[0].worker
        victims = {(tab.user, tab.tab.id) for tab in tabs if tab.worker == victim}
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        # presence() stops counting them once the worker's deadline passed...
        await until(lambda: _disjoint(present_tabs(observer), victims),
                    "the killed worker's tabs to disappear", DEFAULT_TTL + 2)
        gone_after = time.monotonic() - killed
        assert gone_after <= DEFAULT_TTL + 0.5, gone_after
        # ...the other worker's tabs left with it (it was stopped) and the
        # observer's own tab is still there...
        await until(lambda: _equal(present_tabs(observer), {("carol", watcher.tab.id)}),
                    "only the observer's tab", 5)
        # ...and the watcher heard each of the killed worker's tabs leave.

        def left() -> set[tuple[str, str]]:
            return {(event["user"], event["tab"]) for event in _events(watcher.tab)
                    if event["kind"] == "leave"}

        await until(lambda: left() >= victims, "leave events", DEFAULT_TTL + 3)
        heard_after = time.monotonic() - killed
        assert heard_after <= DEFAULT_TTL + DEFAULT_TTL / 5 + 1.0, heard_after
        assert all(n == 1 for n in _count_leaves(watcher.tab).values())  # once each
    finally:
        await close_all([*tabs, watcher])


async def _disjoint(value: Any, other: set[Any]) -> bool:
    return not (await value & other)


def _count_leaves(tab: TestRenderer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in _events(tab):
        if event["kind"] == "leave":
            counts[event["tab"]] = counts.get(event["tab"], 0) + 1
    return counts


def _events(tab: TestRenderer) -> list[dict[str, Any]]:
    found = []
    for push in tab.pushes_to("events", "data"):
        for operation in push.value.get("operations", []):
            found.append(operation["params"]["value"])
    return found


async def relayed_out(server: Any) -> int:
    """Resumes relayed to another worker so far, both workers together."""
    answers = await from_every_worker(server.http_url("/relay"), workers=2, key="worker")
    return sum(answer["relayed_out"] for answer in answers.values())


async def resume(server: Any, client: DashClient, *, elsewhere: bool) -> str | None:
    return await connect_placed(client.resume, server.http_url("/sessions"),
                                elsewhere=elsewhere)


async def test_a_resume_on_another_worker_checks_the_identity(serve_app: Any,
                                                              redis_server: Any) -> None:
    server = serve_app(APP, env=env_of(redis_server), workers=2)
    headers = {"Cookie": "user=alice", "X-Role": "user"}
    async with DashClient(server.url + "/", headers=headers, resumable=True) as client:
        tab = await client.open_renderer()
        await client.heartbeat()
        # The same identity resumes, wherever the new socket lands (the session
        # stays on its worker; another worker relays): until one was relayed.
        for attempt in range(20):
            before = await relayed_out(server)
            await client.drop()
            assert await resume(server, client, elsewhere=attempt % 2 == 1) is None
            result = await tab.call("me.children", inputs={"who.n_clicks": 1})
            assert result.output("me", "children") == "alice (user)"
            if await relayed_out(server) > before:
                break
        else:
            raise AssertionError("no resume landed on the other worker")
        # A changed identity (the role claim; cookies and origin unchanged) is
        # refused, also through the relay: a fresh session with the new role,
        # on the worker the new socket landed on (its tab says which).
        holder = int((await tab.wait_for_push("worker", "children"))[-1].value)
        refused_through_relay = False
        for attempt in range(20):
            role = "admin" if attempt % 2 == 0 else "user"
            client.headers["X-Role"] = role
            await client.drop()
            assert await resume(server, client, elsewhere=attempt % 4 >= 2) == "forbidden"
            pushes = len(tab.pushes_to("worker", "children"))
            await tab.join()  # the fresh session needs the tab again: be_here runs
            await client.wait_for(lambda n=pushes: len(tab.pushes_to("worker", "children")) > n,
                                  "the fresh session's worker", 5)
            landed = int(tab.pushes_to("worker", "children")[-1].value)
            result = await tab.call("me.children", inputs={"who.n_clicks": 1})
            assert result.output("me", "children") == f"alice ({role})"
            refused_through_relay = landed != holder  # the holder was asked through Redis
            holder = landed
            if refused_through_relay:
                break
        assert refused_through_relay, "no refused resume went through the relay"


# ------------------------------------------------------------------------ Chromium


async def open_as(new_browser_context: Any, server: Any, user: str
                  ) -> tuple[BrowserContext, Page, int]:
    context: BrowserContext = await new_browser_context()
    await context.add_cookies([{"name": "user", "value": user, "url": server.url}])
    page = await open_page(context)
    await page.goto(server.url + "/")
    await page.wait_for_function("document.getElementById('worker')?.textContent > 0")
    return context, page, int(await page.inner_text("#worker"))


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_a_revoked_browser_does_not_reconnect(serve_app: Any, redis_server: Any,
                                                    new_browser_context: Any) -> None:
    server = serve_app(APP, env=env_of(redis_server), workers=2)
    # One browser of alice on each worker (a context is one SharedWorker: one socket).
    pages: dict[int, Page] = {}
    for attempt in range(30):
        if attempt % 2 == 0:
            context, page, worker = await open_as(new_browser_context, server, "alice")
        else:
            async with one_worker_held(server.http_url("/sessions"), hold=1.0):
                context, page, worker = await open_as(new_browser_context, server, "alice")
        if worker in pages:
            await context.close()
            continue
        pages[worker] = page
        if len(pages) == 2:
            break
    assert len(pages) == 2, "every browser connected to the same worker"
    _, bob, _ = await open_as(new_browser_context, server, "bob")
    for page in pages.values():
        await page.click("#who")
        await page.wait_for_function("document.getElementById('me').textContent === "
                                     "'alice (user)'")

    before = (await get(server, "/connects"))["alice"]
    started = time.monotonic()
    answer = await post(server, "/revoke?user=alice")
    for page in pages.values():
        await page.wait_for_function(
            "document.documentElement.dataset.quartdashRevoked === 'Revoked'", timeout=2000)
    latency = time.monotonic() - started
    assert latency < 1.0, f"{latency:.3f} s until both browsers saw the revoke"
    other = next(w for w in pages if w != answer["worker"])
    assert other in pages  # one of them was on the worker that did not take the request

    # No reconnect: not by itself, not on a click, not when the tab is shown again.
    for page in pages.values():
        await page.click("#who")
    await asyncio.sleep(3)
    assert (await get(server, "/connects"))["alice"] == before
    # Bob, on the same server, still works.
    await bob.click("#who")
    await bob.wait_for_function("document.getElementById('me').textContent === 'bob (user)'")
    assert {e["identity"]["id"] for e in (await get(server, "/presence"))["entries"]} == {"bob"}
