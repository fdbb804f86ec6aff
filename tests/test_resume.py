"""Lossless resume, at the protocol level, against a real hypercorn.

The test client plays quartdash's worker (``DashClient(resumable=True)``):
it numbers its messages, acks the server's, drops connections the way a
network does and resumes them. Every stream a test checks is a ``Patch``
append of 1, 2, 3...: after any number of drops it must be exactly that,
in order, each number once. Chromium versions through a TCP proxy that cuts
and stalls connections are in tests/test_resume_browser.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from quartdash.testing import DashClient, TestRenderer
from quartdash.testing.transports import _Closed
from tests.helpers import http_get

APP = "tests.apps.resume_app:asgi"


def appended(tab: TestRenderer, component: str) -> list[Any]:
    """The values ``Patch.append`` pushed to ``component.children``, in order."""
    values = []
    for push in tab.pushes_to(component, "children"):
        for operation in push.value.get("operations", []):
            assert operation["operation"] == "Append", operation
            values.append(int(operation["params"]["value"]))
    return values


def exactly_counting(values: list[Any]) -> bool:
    return values == list(range(1, len(values) + 1))


async def stats(server: Any) -> dict[str, Any]:
    response = await asyncio.to_thread(http_get, server.http_url("/_resume/stats"), timeout=5)
    return json.loads(response.body)


@pytest.fixture
def server(serve_app_session: Any) -> Any:
    return serve_app_session(APP, env={"RESUME_TIMEOUT": "10"}, ready_path="/_resume/stats")


@pytest_asyncio.fixture
async def client(server: Any) -> AsyncIterator[DashClient]:
    async with DashClient(server.url + "/", resumable=True) as c:
        yield c


async def wait_until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_dropped_connection_loses_nothing(server: Any, client: DashClient) -> None:
    before = (await stats(server))["counters"]
    tab = await client.open_renderer(props={"q.value": "typed"})
    pending = await tab.start("count-done.children", inputs={"count-btn.n_clicks": 1})
    for _ in range(4):  # four drops, each a second long, while both streams run
        await asyncio.sleep(0.6)
        await client.drop()
        assert (await stats(server))["sessions"] == ["detached"]
        await asyncio.sleep(1.0)
        assert await client.resume() is None
    await asyncio.sleep(0.5)
    ticks, counts = appended(tab, "ticks"), appended(tab, "counts")
    assert exactly_counting(ticks) and len(ticks) > 40, ticks
    assert exactly_counting(counts) and len(counts) > 40, counts
    after = (await stats(server))["counters"]
    # One instance of each, however often the socket changed.
    assert after.get("ticker_started", 0) - before.get("ticker_started", 0) == 1
    assert after.get("count_started", 0) - before.get("count_started", 0) == 1
    assert after.get("count_cancelled", 0) == before.get("count_cancelled", 0)
    assert not pending.done() or (await pending.result()).ok


async def test_what_the_client_sent_during_the_gap_arrives_once(server: Any,
                                                                client: DashClient) -> None:
    tab = await client.open_renderer(props={"q.value": "during the gap"})
    await client.drop()
    # The tab keeps working offline: the request waits in the client's log.
    pending = await tab.start("answer.children", inputs={"ask-btn.n_clicks": 1})
    assert await client.resume() is None
    result = await pending.result(timeout=10)
    assert result.output("answer", "children") == "got during the gap"


async def test_get_prop_asked_while_detached_is_asked_on_resume(server: Any,
                                                                 client: DashClient) -> None:
    tab = await client.open_renderer(props={"q.value": "late answer"})
    pending = await tab.start("later-answer.children", inputs={"ask-later-btn.n_clicks": 1})
    await asyncio.sleep(0.2)
    await client.drop()
    await asyncio.sleep(1.5)  # the callback asks meanwhile: the question waits for us
    assert not tab.get_props_requests
    assert await client.resume() is None
    result = await pending.result(timeout=10)
    assert result.output("later-answer", "children") == "got late answer later"
    assert len(tab.get_props_requests) == 1  # asked once


async def test_a_token_is_single_use(server: Any, client: DashClient) -> None:
    await client.open_renderer()
    first = client.token
    await client.drop()
    assert await client.resume() is None
    assert client.token != first  # a new token for the next resume
    # Someone replaying the old token gets nothing.
    async with DashClient(server.url + "/", resumable=True) as thief:
        await thief.connect()
        await thief.drop()
        thief.token = first
        assert await thief.resume() == "unknown"


async def test_a_stolen_token_needs_the_victims_cookies(server: Any) -> None:
    async with DashClient(server.url + "/", resumable=True,
                          headers={"Cookie": "session=victim"}) as victim:
        await victim.open_renderer()
        await victim.drop()
        async with DashClient(server.url + "/", resumable=True,
                              headers={"Cookie": "session=thief"}) as thief:
            await thief.connect()
            await thief.drop()
            thief.token = victim.token
            assert await thief.resume() == "forbidden"
        assert await victim.resume() is None  # the victim still gets it back


async def test_a_garbage_token_is_unknown(client: DashClient) -> None:
    await client.open_renderer()
    await client.drop()
    client.token = "x" * 43
    assert await client.resume() == "unknown"
    assert client.token is not None  # and a fresh session started on the same socket


async def test_the_window_passing_is_signalled(serve_app: Any) -> None:
    server = serve_app(APP, env={"RESUME_TIMEOUT": "1"}, ready_path="/_resume/stats")
    async with DashClient(server.url + "/", resumable=True) as client:
        tab = await client.open_renderer()
        await wait_until(lambda: len(appended(tab, "ticks")) >= 3, "ticks")
        await client.drop()
        await asyncio.sleep(2.0)
        assert (await stats(server))["sessions"] == []  # the session ended
        assert await client.resume() == "expired"
        # The fresh session starts the tab's persistent callback again, from 1.
        await tab.join()
        restarted = len(tab.pushes_to("ticks", "children"))
        await wait_until(lambda: len(tab.pushes_to("ticks", "children")) > restarted + 2,
                         "ticks of the new session")
    assert (await stats(server))["counters"]["ticker_started"] == 2


async def test_overflowing_the_budget_while_detached_is_signalled(serve_app: Any) -> None:
    server = serve_app(APP, env={"RESUME_PENDING_BYTES": "4096", "RESUME_TICK": "0.005"},
                       ready_path="/_resume/stats")
    async with DashClient(server.url + "/", resumable=True) as client:
        await client.open_renderer()
        await client.drop()
        await asyncio.sleep(1.0)  # 200 patches a second pile up with nowhere to go
        assert (await stats(server))["sessions"] == []
        assert await client.resume() == "budget"


async def test_a_resume_takes_over_a_socket_the_server_thought_alive(
        server: Any, client: DashClient) -> None:
    """The old socket died silently (a stall): the resume detaches it first."""
    tab = await client.open_renderer()
    await wait_until(lambda: len(appended(tab, "ticks")) >= 3, "ticks")
    old_socket = client._socket
    client._socket = None  # walk away from it without a word to anyone
    client.generation += 1
    assert await client.resume() is None
    await wait_until(lambda: len(appended(tab, "ticks")) >= 10, "more ticks")
    assert exactly_counting(appended(tab, "ticks"))
    assert old_socket is not None
    with pytest.raises(_Closed) as closed:  # the server closed the old one
        for _ in range(1000):
            await old_socket.recv()
    assert closed.value.code == 4011
