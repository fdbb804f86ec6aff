"""Streaming callbacks, get_prop(path=), events and re-triggering at the protocol level.

A real hypercorn serves tests/apps/live_app.py; the test client plays the
browser over a real WebSocket (quartdash's worker when ``resumable=True``).
The same features in Chromium: tests/test_live_browser.py. The session core
alone: tests/test_session_features.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from dash import Input, Output, html

from quartdash import Dash
from quartdash.hosting.streaming import apply_patch, compose
from quartdash.testing import DashClient, TestRenderer

APP = "tests.apps.live_app:asgi"
ROWS = 10_000


@pytest.fixture
def server(serve_app_session: Any) -> Any:
    return serve_app_session(APP, env={"LIVE_SLOW": "1.0"}, ready_path="/_live/stats")


@pytest_asyncio.fixture
async def client(server: Any) -> AsyncIterator[DashClient]:
    async with DashClient(server.url + "/") as c:
        yield c


async def stats(client: DashClient) -> dict[str, Any]:
    return dict(await client.get_json("/_live/stats"))


async def counter(client: DashClient, name: str) -> int:
    return int((await stats(client))["counters"].get(name, 0))


async def wait_for_counter(client: DashClient, name: str, value: int,
                           timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await counter(client, name) >= value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not reach {value} within {timeout} s")


def patch_text(values: list[Any]) -> str:
    """What a browser shows after the pushes: a full value, then Add patches."""
    text = ""
    for value in values:
        if isinstance(value, dict) and "__dash_patch_update" in value:
            for op in value["operations"]:
                assert op["operation"] == "Add" and op["location"] == []
                text += op["params"]["value"]
        else:
            text = value
    return text


# ------------------------------------------------------------------------ streaming


async def test_a_streamed_answer_arrives_token_by_token(client: DashClient) -> None:
    tab = await client.open_renderer(props={"prompt.value": "why"})
    result = await tab.call("..answer.children...answer-status.children..",
                            inputs={"ask.n_clicks": 1}, timeout=10)
    # The values went out as pushes; the response settles the request and
    # repeats nothing (a Patch must not apply twice).
    assert result.payload == {"status": "ok", "data": {"multi": True, "response": {}}}
    answer = [p.value for p in result.pushes_to("answer", "children")]
    assert answer[0] == "" and len(answer) == 13
    assert patch_text(answer) == ("The answer to 'why' is streamed one token at a time.")
    assert [p.value for p in result.pushes_to("answer-status", "children")] == [
        "thinking", "done"]
    # Each yield left when it was made, not at the end.
    first, last = result.pushes[0].received_at, result.pushes[-1].received_at
    assert last - first > 0.2  # 12 tokens, 30 ms apart
    assert result.received_at - first > 0.2


async def test_a_def_generator_streams_from_the_thread_pool(client: DashClient) -> None:
    tab = await client.open_renderer()
    result = await tab.call("count-out.children", inputs={"count-btn.n_clicks": 1})
    assert result.ok and [p.value for p in result.pushes_to("count-out", "children")] == [
        1, 2, 3, 4, 5]


async def test_a_stream_that_raises_reports_an_error_after_its_yields(
        client: DashClient) -> None:
    tab = await client.open_renderer()
    result = await tab.call("fail-out.children", inputs={"fail-btn.n_clicks": 1})
    assert [p.value for p in result.pushes_to("fail-out", "children")] == ["partial"]
    assert result.status == "error"
    assert "see the server log" in (result.error or "")  # no traceback outside debug


@pytest.mark.parametrize("how", ["tab closed", "connection closed"])
async def test_closing_the_tab_or_connection_cancels_a_stream(server: Any, how: str) -> None:
    async with DashClient(server.url + "/") as watcher:
        closed = await counter(watcher, "long_closed")
        async with DashClient(server.url + "/") as client:
            tab = await client.open_renderer()
            await tab.start("long-out.children", inputs={"long-btn.n_clicks": 1})
            await tab.wait_for_push("long-out", "children", count=3)
            if how == "tab closed":
                await tab.leave()
        await wait_for_counter(watcher, "long_closed", closed + 1)


async def test_over_http_a_stream_runs_to_its_end_and_sends_the_combined_result(
        client: DashClient) -> None:
    result = await client.call_http("..answer.children...answer-status.children..",
                                    inputs={"ask.n_clicks": 1},
                                    state={"prompt.value": "http"}, timeout=10)
    assert result.output("answer", "children") == (
        "The answer to 'http' is streamed one token at a time.")
    assert result.output("answer-status", "children") == "done"
    sync = await client.call_http("count-out.children", inputs={"count-btn.n_clicks": 1})
    assert sync.output("count-out", "children") == 5


async def test_a_streaming_callback_is_a_websocket_callback(client: DashClient) -> None:
    specs = {spec["output"]: spec for spec in await client.get_json("_dash-dependencies")}
    chat = specs["..answer.children...answer-status.children.."]
    assert chat["stream"] is True and chat["websocket"] is True
    assert specs["queue-out.children"]["on_retrigger"] == "queue"
    assert "stream" not in specs["slider-out.children"]


# ------------------------------------------------------------------- partial reads


@pytest.mark.parametrize("helper", [False, True])
async def test_get_prop_path_reads_one_cell_of_a_big_grid(client: DashClient,
                                                          helper: bool) -> None:
    rows = [{"id": i, "price": i * 1.25} for i in range(ROWS)]
    tab = await client.open_renderer(props={"grid.rowData": rows, "row-index.value": 7777})
    tab.resolve_paths = helper
    result = await tab.call("cell.children", inputs={"read-cell.n_clicks": 1})
    assert result.output("cell", "children").startswith("9721.25 in ")
    (request,) = tab.get_props_requests
    assert request.path == [7777, "price"]
    sizes = (await stats(client))["response_sizes"]
    if helper:  # only the cell crossed the network
        assert request.answer == {"rowData": 9721.25} and sizes[-1] < 50
    else:  # dash-renderer 4.4 sends it all; the server reads the cell
        assert sizes[-1] > 100_000


# ------------------------------------------------------------------------- events


async def test_events_arrive_in_order_and_are_counted(client: DashClient) -> None:
    tab = await client.open_renderer(props={"events-rate.value": 2000,
                                            "events-count.value": 2000})
    result = await tab.call("events-sent.children", inputs={"events-go.n_clicks": 1},
                            timeout=20)
    assert result.output("events-sent", "children").endswith(", 0 refused")
    ticks = [e.data["i"] for e in tab.events_named("tick")]
    assert ticks == list(range(2000)) and tab.events_lost == 0
    assert not tab.pushes  # events are not pushes: nothing reaches the renderer's store


async def test_events_are_lossless_across_a_dropped_connection(server: Any) -> None:
    async with DashClient(server.url + "/", resumable=True) as client:
        tab = await client.open_renderer(props={"events-rate.value": 500,
                                                "events-count.value": 1500})
        pending = await tab.start("events-sent.children", inputs={"events-go.n_clicks": 1})
        await tab.wait_for_event("tick", count=200, timeout=10)
        await client.drop()
        await asyncio.sleep(0.8)  # events keep coming, and wait for us on the server
        assert await client.resume() is None
        result = await pending.result(timeout=20)
        assert result.ok
        ticks = [e.data["i"] for e in tab.events_named("tick")]
        assert ticks == list(range(1500))  # every one, in order, once


async def test_topic_and_app_events_reach_every_tab(client: DashClient) -> None:
    a, b = await client.open_renderer(), await client.open_renderer()
    other = await client.open_renderer()  # never joins the topic
    for tab in (a, b):
        result = await tab.call("joined.children", inputs={"join-feed.n_clicks": 1})
        assert result.output("joined", "children") == "joined"
    response = await client.http("POST", "/_live/feed/headline")
    assert response.status == 200
    for tab in (a, b):
        (event,) = await tab.wait_for_event("headline")
        assert event.data == {"to": "the feed"}
    response = await client.http("POST", "/_live/feed/all")
    for tab in (a, b, other):
        (event,) = await tab.wait_for_event("notice")
        assert event.data == {"to": "every tab"}
    assert not other.events_named("headline")


# ------------------------------------------------------------------ re-triggering


async def test_the_newest_slider_value_wins(client: DashClient) -> None:
    before = await stats(client)
    tab = await client.open_renderer()
    calls = []
    for value in (10, 20, 30, 40):
        calls.append(await tab.start("slider-out.children", inputs={"slider.value": value}))
        await asyncio.sleep(0.05)
    results = [await call.result(timeout=5) for call in calls]
    assert [r.status for r in results] == ["prevent_update"] * 3 + ["ok"]
    assert results[-1].output("slider-out", "children") == "value 40"
    # The three older runs were settled at once, not after their second of work.
    assert all(r.duration < 0.5 for r in results[:3])
    after = (await stats(client))["counters"]
    started = after["slider_started"] - before["counters"].get("slider_started", 0)
    cancelled = after["slider_cancelled"] - before["counters"].get("slider_cancelled", 0)
    assert (started, cancelled) == (4, 3)


@pytest.mark.parametrize("kind, most_at_once", [("queue", 1), ("parallel", 3)])
async def test_queue_and_parallel(client: DashClient, kind: str, most_at_once: int) -> None:
    tab: TestRenderer = await client.open_renderer()
    calls = [await tab.start(f"{kind}-out.children", inputs={f"{kind}-btn.n_clicks": n})
             for n in (1, 2, 3)]
    results = [await call.result(timeout=5) for call in calls]
    assert [r.output(f"{kind}-out", "children") for r in results] == [
        f"{kind} 1", f"{kind} 2", f"{kind} 3"]
    assert (await stats(client))["counters"][f"{kind}_max"] == most_at_once
    if kind == "queue":  # one after the other: each took its 0.2 s in turn
        assert results[2].received_at - results[0].received_at > 0.35


# --------------------------------------------------------------- in process, no server


def test_on_retrigger_is_checked_when_the_callback_is_declared() -> None:
    app = Dash(__name__)
    with pytest.raises(ValueError, match="on_retrigger"):
        app.callback(Output("o", "children"), Input("i", "value"), on_retrigger="latest")


def test_callbacks_without_inputs_keep_one_id_per_call_site() -> None:
    # Dash names them after the line that declared them: quartdash's wrapper
    # around dash's registration must not become that line.
    app = Dash(__name__, websocket_callbacks=True)
    app.layout = html.Div()

    @app.callback(persistent=True)
    async def first() -> None:
        return None

    @app.callback(persistent=True)
    async def second() -> None:
        return None

    assert len({spec["output"] for spec in app._callback_list}) == 2


def test_a_background_callback_cannot_stream() -> None:
    app = Dash(__name__)
    with pytest.raises(TypeError, match="background"):
        @app.callback(Output("o", "children"), Input("i", "value"), background=True,
                      manager=object())
        async def stream(value: Any) -> Any:
            yield value


@pytest.mark.parametrize("operations, start, expected", [
    ([{"operation": "Add", "location": [], "params": {"value": "b"}}], "a", "ab"),
    ([{"operation": "Append", "location": ["x"], "params": {"value": 3}}], {"x": [1, 2]},
     {"x": [1, 2, 3]}),
    ([{"operation": "Assign", "location": ["x", -1], "params": {"value": 9}}],
     {"x": [1, 2]}, {"x": [1, 9]}),
    ([{"operation": "Assign", "location": ["new", 0], "params": {"value": 1}}], {},
     {"new": [1]}),
    ([{"operation": "Delete", "location": [0], "params": {}}], [1, 2, 3], [2, 3]),
    ([{"operation": "Insert", "location": [], "params": {"index": -1, "value": 0}}],
     [1, 2], [1, 0, 2]),
    ([{"operation": "Merge", "location": [], "params": {"value": {"b": 2}}}], {"a": 1},
     {"a": 1, "b": 2}),
    ([{"operation": "Extend", "location": [], "params": {"value": [3]}}], [1], [1, 3]),
    ([{"operation": "Prepend", "location": [], "params": {"value": 0}}], [1], [0, 1]),
    ([{"operation": "Remove", "location": [], "params": {"value": 1}}], [1, 2, 1], [2]),
    ([{"operation": "Reverse", "location": [], "params": {}}], [1, 2], [2, 1]),
    ([{"operation": "Clear", "location": ["x"], "params": {}}], {"x": [1]}, {"x": []}),
    ([{"operation": "Mul", "location": ["n"], "params": {"value": 3}},
      {"operation": "Sub", "location": ["n"], "params": {"value": 1}}], {"n": 2}, {"n": 5}),
])
def test_patches_combine_like_the_renderer_applies_them(operations: list[dict[str, Any]],
                                                        start: Any, expected: Any) -> None:
    assert apply_patch(start, operations) == expected
    patch = {"__dash_patch_update": "__dash_patch_update", "operations": operations}
    assert compose(start, patch) == expected  # a full value, then a patch: applied


def test_patches_without_a_value_before_them_stay_one_patch() -> None:
    from quartdash.hosting.streaming import _NOTHING

    one = {"__dash_patch_update": "__dash_patch_update",
           "operations": [{"operation": "Add", "location": [], "params": {"value": "a"}}]}
    two = {"__dash_patch_update": "__dash_patch_update",
           "operations": [{"operation": "Add", "location": [], "params": {"value": "b"}}]}
    combined = compose(compose(_NOTHING, one), two)
    assert combined["operations"] == one["operations"] + two["operations"]
    assert compose(combined, "full") == "full"
    with pytest.raises(ValueError, match="Append"):
        apply_patch({}, [{"operation": "Append", "location": ["missing"],
                          "params": {"value": 1}}])
    json.dumps(combined)  # plain JSON, as Dash sends it


async def test_a_superseded_def_callback_keeps_its_thread_slot_until_it_returns() -> None:
    """A thread cannot be cancelled: the superseded run's pushes are dropped,
    and the connection's share of the pool stays taken until it returns."""
    import threading

    from dash import set_props

    app = Dash(__name__, websocket_callbacks=True, websocket_max_sync_callbacks=1)
    app.layout = html.Div([html.Button(id="go"), html.Div(id="out"), html.Div(id="note")])
    gate = threading.Event()
    started: list[int] = []

    @app.callback(Output("out", "children"), Input("go", "n_clicks"),
                  prevent_initial_call=True)
    def blocking(n: int) -> str:
        started.append(n)
        if n == 1:
            gate.wait(5)
            set_props("note", {"children": "from the superseded run"})  # dropped
        return f"run {n}"

    async with DashClient(app) as client:
        tab = await client.open_renderer()
        first = await tab.start("out.children", inputs={"go.n_clicks": 1})
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.01)
        second = await tab.start("out.children", inputs={"go.n_clicks": 2})
        assert (await first.result()).status == "prevent_update"
        await asyncio.sleep(0.2)
        assert started == [1]  # run 2 waits for run 1's thread, not just its task
        gate.set()
        result = await second.result()
        assert result.output("out", "children") == "run 2" and started == [1, 2]
        await asyncio.sleep(0.05)
        assert not tab.pushes_to("note", "children")
