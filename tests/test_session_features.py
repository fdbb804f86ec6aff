"""The session core's re-triggering, events and partial reads, with a fake app and socket.

Like tests/test_session.py (whose fakes these tests reuse): no Dash, no
Quart. Streaming callbacks live in the glue (hosting/streaming.py) and are
tested against a real server in tests/test_streaming.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from quartdash.config import WebSocketConfig
from quartdash.session import Session
from tests.test_session import FakeApp, FakeTransport, request, response_to, until


class GatedTransport(FakeTransport):
    """A client that stops reading while ``gate`` is clear (TCP back-pressure)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, text: str) -> None:
        await self.gate.wait()
        await super().send(text)


async def serve(app: FakeApp, transport: FakeTransport | None = None
                ) -> tuple[Session, FakeTransport, asyncio.Task[None]]:
    session = Session(app, {"headers": {}})
    transport = transport or FakeTransport()
    task = asyncio.create_task(session.serve(transport))
    await asyncio.sleep(0)
    return session, transport, task


@pytest.fixture
def app() -> FakeApp:
    return FakeApp(config=replace(WebSocketConfig(), shutdown_grace=0.5))


@pytest.fixture
async def served(app: FakeApp) -> AsyncIterator[tuple[Session, FakeTransport]]:
    session, transport, task = await serve(app)
    yield session, transport
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def statuses(transport: FakeTransport) -> dict[str, str]:
    return {m["requestId"]: m["payload"]["status"] for m in transport.sent
            if m["type"] == "callback_response"}


# ---------------------------------------------------------------- re-triggering


async def test_the_newest_run_wins_and_the_older_ones_see_cancelled_error(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    session, transport = served
    log: list[str] = []
    release = asyncio.Event()

    @app.callback("out.children")
    async def slow(payload: dict[str, Any], ws: Any) -> Any:
        n = payload["inputs"][0]["value"]
        log.append(f"start {n}")
        try:
            await release.wait()
        except asyncio.CancelledError:
            log.append(f"cancelled {n}")
            ws.set_prop_sync("out", "children", f"cleanup of {n}")  # dropped: superseded
            raise
        return {"multi": True, "response": {"out": {"children": f"result {n}"}}}

    for n in (1, 2, 3):
        message = request("out.children", f"q{n}")
        message["payload"]["inputs"][0]["value"] = n
        transport.feed(message)
        await until(lambda n=n: f"start {n}" in log)
    # The older requests are answered at once, so the renderer settles them.
    assert statuses(transport) == {"q1": "prevent_update", "q2": "prevent_update"}
    release.set()
    reply = await transport.wait_for(response_to("q3"))
    assert reply["payload"]["data"]["response"]["out"]["children"] == "result 3"
    await until(lambda: len(session.runs) == 0)
    assert log == ["start 1", "cancelled 1", "start 2", "cancelled 2", "start 3"]
    assert not [m for m in transport.sent if m["type"] == "set_props"]
    assert session.runs.superseded == 2
    assert statuses(transport) == {"q1": "prevent_update", "q2": "prevent_update", "q3": "ok"}


async def test_a_superseded_run_takes_back_what_it_queued(app: FakeApp) -> None:
    transport = GatedTransport()
    session, _, task = await serve(app, transport)
    started = asyncio.Event()

    @app.callback("out.children")
    async def pusher(payload: dict[str, Any], ws: Any) -> Any:
        n = payload["inputs"][0]["value"]
        ws.set_prop_sync("log", "children", f"from run {n}")
        ws.send_event_sync("progress", n)
        started.set()
        await asyncio.sleep(30)

    transport.feed({"type": "renderer_joined", "rendererId": "r1"})
    await until(lambda: "r1" in session.renderers)
    transport.gate.clear()  # the client stops reading
    first = request("out.children", "q1")
    transport.feed(first)
    await started.wait()
    await asyncio.sleep(0.05)  # the sender is stuck in a send; run 1's push waits behind it
    second = request("out.children", "q2")
    second["payload"]["inputs"][0]["value"] = 2
    transport.feed(second)
    await until(lambda: session.runs.superseded == 1)
    transport.gate.set()
    await transport.wait_for(lambda m: m["type"] == "event" and m["payload"]["data"] == 2)
    pushed = [m["payload"]["props"]["children"] for m in transport.sent
              if m["type"] == "set_props"]
    events = [m["payload"]["data"] for m in transport.sent if m["type"] == "event"]
    # Run 1's push and event had not left yet when run 2 replaced it: taken back.
    # (What a run sent before it was superseded cannot be taken back.)
    assert "from run 2" in pushed and events[-1] == 2
    assert pushed.count("from run 1") + events.count(1) <= 2
    assert statuses(transport)["q1"] == "prevent_update"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_queue_runs_each_request_in_turn(app: FakeApp,
                                               served: tuple[Session, FakeTransport]) -> None:
    session, transport = served
    app.retrigger["out.children"] = "queue"
    running: list[int] = []
    order: list[int] = []

    @app.callback("out.children")
    async def job(payload: dict[str, Any], ws: Any) -> Any:
        n = payload["inputs"][0]["value"]
        running.append(n)
        assert len(running) == 1, f"two runs at once: {running}"
        await asyncio.sleep(0.03)
        running.remove(n)
        order.append(n)
        return {"multi": True, "response": {"out": {"children": n}}}

    for n in (1, 2, 3):
        message = request("out.children", f"q{n}")
        message["payload"]["inputs"][0]["value"] = n
        transport.feed(message)
    await transport.wait_for(response_to("q3"))
    assert order == [1, 2, 3]
    assert statuses(transport) == {"q1": "ok", "q2": "ok", "q3": "ok"}
    await until(lambda: len(session.runs) == 0)


async def test_queued_requests_of_a_tab_that_leaves_never_run(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    session, transport = served
    app.retrigger["out.children"] = "queue"
    started: list[str] = []

    @app.callback("out.children")
    async def job(payload: dict[str, Any], ws: Any) -> Any:
        started.append("run")
        await asyncio.sleep(30)

    transport.feed(request("out.children", "q1"), request("out.children", "q2"))
    await until(lambda: len(session.runs) == 2)
    transport.feed({"type": "renderer_left", "rendererId": "r1"})
    await until(lambda: len(session.runs) == 0)
    await asyncio.sleep(0.05)
    assert started == ["run"] and session.retained.used == 0


async def test_parallel_runs_every_request_at_once(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    _session, transport = served
    app.retrigger["out.children"] = "parallel"
    at_once = asyncio.Event()
    running: set[str] = set()

    @app.callback("out.children")
    async def job(payload: dict[str, Any], ws: Any) -> Any:
        running.add(ws.owner.request_ids[0])
        if len(running) == 3:
            at_once.set()
        await asyncio.wait_for(at_once.wait(), 2)
        return {"multi": True, "response": {}}

    transport.feed(*(request("out.children", f"q{n}") for n in (1, 2, 3)))
    await transport.wait_for(response_to("q3"))
    await until(lambda: len(statuses(transport)) == 3)
    assert set(statuses(transport).values()) == {"ok"}


async def test_pattern_instances_do_not_replace_each_other(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    session, transport = served
    release = asyncio.Event()

    @app.callback("row.children")
    async def row(payload: dict[str, Any], ws: Any) -> Any:
        await release.wait()
        return {"multi": True, "response": {}}

    for n in (1, 2):
        message = request("row.children", f"q{n}")
        message["payload"]["outputs"] = {"id": {"type": "row", "index": n},
                                         "property": "children"}
        transport.feed(message)
    await until(lambda: len(session.runs) == 2)
    release.set()
    await until(lambda: len(statuses(transport)) == 2)
    assert statuses(transport) == {"q1": "ok", "q2": "ok"}


async def test_another_tab_does_not_replace_a_run(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    session, transport = served
    release = asyncio.Event()

    @app.callback("out.children")
    async def job(payload: dict[str, Any], ws: Any) -> Any:
        await release.wait()
        return {"multi": True, "response": {}}

    transport.feed(request("out.children", "a1", "tab-a"), request("out.children", "b1", "tab-b"))
    await until(lambda: len(session.runs) == 2)
    release.set()
    await until(lambda: len(statuses(transport)) == 2)
    assert statuses(transport) == {"a1": "ok", "b1": "ok"}


# ------------------------------------------------------------------------ events


async def test_events_arrive_in_order_with_the_pushes(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    session, transport = served

    @app.callback("out.children")
    async def talk(payload: dict[str, Any], ws: Any) -> Any:
        await ws.send_event("token", "a")
        ws.set_prop_sync("out", "children", "half")
        ws.send_event_sync("token", {"b": [1, 2]})
        await asyncio.to_thread(ws.send_event_sync, "token", "from a thread")
        return None

    transport.feed(request("out.children", "q1"))
    await transport.wait_for(response_to("q1"))
    kinds = [(m["type"], m["payload"].get("data", m["payload"].get("props")))
             for m in transport.sent if m["type"] in ("event", "set_props")]
    assert kinds == [("event", "a"), ("set_props", {"children": "half"}),
                     ("event", {"b": [1, 2]}), ("event", "from a thread")]
    event = next(m for m in transport.sent if m["type"] == "event")
    assert event == {"type": "event", "rendererId": "r1",
                     "payload": {"name": "token", "data": "a"}}
    assert session.events_sent == 3


@pytest.mark.parametrize("name", ["continuity-lost", "events-lost", "quartdash-x", "", 3])
async def test_reserved_and_bad_event_names_are_refused(
        app: FakeApp, served: tuple[Session, FakeTransport], name: Any) -> None:
    _session, transport = served
    errors: list[type] = []

    @app.callback("out.children")
    async def talk(payload: dict[str, Any], ws: Any) -> Any:
        try:
            await ws.send_event(name, 1)
        except (TypeError, ValueError) as error:
            errors.append(type(error))
        return None

    transport.feed(request("out.children", "q1"))
    await transport.wait_for(response_to("q1"))
    assert len(errors) == 1
    assert not [m for m in transport.sent if m["type"] == "event"]


async def test_events_over_the_budget_are_dropped_and_the_tab_is_told() -> None:
    app = FakeApp(config=replace(WebSocketConfig(), shutdown_grace=0.5,
                                 max_pending_event_bytes=2000))
    transport = GatedTransport()
    session, _, task = await serve(app, transport)
    results: list[bool] = []

    @app.callback("out.children")
    async def flood(payload: dict[str, Any], ws: Any) -> Any:
        for i in range(100):
            results.append(await ws.send_event("n", i))
        return None

    transport.feed({"type": "renderer_joined", "rendererId": "r1"})
    await until(lambda: "r1" in session.renderers)
    transport.gate.clear()
    transport.feed(request("out.children", "q1"))
    await until(lambda: len(results) == 100)
    transport.gate.set()
    await transport.wait_for(response_to("q1"))
    delivered = [m["payload"]["data"] for m in transport.sent if m["type"] == "event"]
    lost = [m for m in transport.sent if m["type"] == "events_lost"]
    assert delivered == list(range(len(delivered)))  # in order, a prefix: nothing skipped
    assert 0 < len(delivered) < 100
    assert results.count(False) == 100 - len(delivered) == session.events_dropped
    # One notice (a newer total replaces a waiting one) with the running total.
    assert [m["payload"]["count"] for m in lost] == [100 - len(delivered)]
    assert session.state.value == "open"  # no close: only the events were refused
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------- partial reads


@pytest.mark.parametrize("resolved", [False, True])
async def test_get_prop_with_a_path(app: FakeApp, served: tuple[Session, FakeTransport],
                                    resolved: bool) -> None:
    _session, transport = served
    rows = [{"price": i} for i in range(10)]

    @app.callback("read.children")
    async def read(payload: dict[str, Any], ws: Any) -> Any:
        return await ws.get_prop("grid", "rowData", timeout=2, path=[7, "price"])

    transport.feed(request("read.children", "q1"))
    ask = await transport.wait_for(lambda m: m["type"] == "get_props_request")
    assert ask["payload"] == {"componentId": "grid", "properties": ["rowData"],
                              "path": [7, "price"]}
    answer: dict[str, Any] = {"type": "get_props_response", "rendererId": "r1",
                              "requestId": ask["requestId"]}
    if resolved:  # quartdash's page helper: only the item, marked as such
        answer.update(payload={"rowData": 7}, pathResolved=True)
    else:  # a renderer that ignores the path: the whole value, resolved here
        answer.update(payload={"rowData": rows})
    transport.feed(answer)
    reply = await transport.wait_for(response_to("q1"))
    assert reply["payload"]["data"] == 7


async def test_a_bad_path_raises_in_the_callback(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    _session, transport = served
    errors: list[type] = []

    @app.callback("read.children")
    async def read(payload: dict[str, Any], ws: Any) -> Any:
        for path in (("a",), [True], [2**60]):
            try:
                await ws.get_prop("grid", "rowData", path=path)
            except (TypeError, ValueError) as error:
                errors.append(type(error))
        return None

    transport.feed(request("read.children", "q1"))
    await transport.wait_for(response_to("q1"))
    assert errors == [TypeError, TypeError, ValueError]
    assert not [m for m in transport.sent if m["type"] == "get_props_request"]


async def test_a_run_cancelled_before_it_started_leaves_nothing_behind(
        app: FakeApp, served: tuple[Session, FakeTransport]) -> None:
    """Two requests (or a request and the tab leaving) in one frame: the first
    run's task is cancelled before its first step and never runs its body."""
    session, transport = served
    ran: list[str] = []

    @app.callback("out.children")
    async def job(payload: dict[str, Any], ws: Any) -> Any:
        ran.append(ws.owner.request_ids[0])
        await asyncio.sleep(0.01)
        return {"multi": True, "response": {}}

    transport.feed({"type": "renderer_joined", "rendererId": "r1"})
    await until(lambda: "r1" in session.renderers)
    baseline = session.retained.used
    transport.inbound.put_nowait(json.dumps([request("out.children", "q1"),
                                             request("out.children", "q2")]))
    await transport.wait_for(response_to("q2"))
    assert statuses(transport) == {"q1": "prevent_update", "q2": "ok"} and ran == ["q2"]
    await until(lambda: session.retained.used == baseline and not list(session.runs))
    # A request and its tab's departure in one frame: nothing kept either.
    transport.inbound.put_nowait(json.dumps([request("out.children", "q3", "r2"),
                                             {"type": "renderer_left", "rendererId": "r2"}]))
    await until(lambda: "r2" not in session.renderers)
    await until(lambda: session.retained.used == baseline and not list(session.runs))
    assert len(session.runs) == 0
