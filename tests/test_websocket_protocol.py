"""The WebSocket-callback protocol against each real server, over real sockets.

Every test that talks to a server runs on hypercorn, uvicorn and granian
(the ``server_name`` fixture).

Apps: tests/apps/ws_basic.py (the seed's examples and probes; its
``/status`` route shows server-side events such as a callback's cleanup)
and tests/apps/ws_guarded.py (allowed origins and hooks, in its own process
because ``dash.hooks`` are process-wide). Both servers are shared by the
module's tests; every test uses its own renderer ids, so the events a test
reads are its own.

Clients: quartdash.testing.DashClient over the network, and a raw
``websockets`` client where the bare wire is the point.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from dash import html
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed

from quartdash import Dash
from quartdash.testing import DashClient, TestRenderer, build_payload
from tests.helpers import SERVERS, ServerProcess

TICK = 0.02  # ws_basic's WS_TICK default


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(params=SERVERS)
def server_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def basic(serve_app_session: Any, server_name: str) -> ServerProcess:
    return serve_app_session("tests.apps.ws_basic:asgi", server=server_name)


@pytest.fixture
def guarded(serve_app_session: Any, server_name: str) -> ServerProcess:
    return serve_app_session("tests.apps.ws_guarded:asgi", ready_path="/guarded/",
                             server=server_name)


def guarded_url(server: ServerProcess) -> str:
    return server.http_url("/guarded/")


async def events(client: DashClient, renderer: TestRenderer | str,
                 event: str | None = None) -> list[dict[str, Any]]:
    rid = renderer if isinstance(renderer, str) else renderer.id
    found = (await client.get_json(f"/status?renderer={rid}"))["events"]
    return [e for e in found if event is None or e["event"] == event]


async def wait_for_event(client: DashClient, renderer: TestRenderer | str, event: str, *,
                         count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Poll ws_basic's /status until ``renderer`` has ``count`` ``event`` events."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await events(client, renderer, event)
        if len(found) >= count:
            return found
        if loop.time() > deadline:
            raise AssertionError(f"no {count} {event!r} event(s) within {timeout} s; events: "
                                 f"{await events(client, renderer)}")
        await asyncio.sleep(0.05)


def instances(pushes: list[Any]) -> set[str]:
    """Which persistent-callback instances produced these ``live`` pushes."""
    return {p.value.split(":")[0] for p in pushes}


# ------------------------------------------------------------------------ streaming


async def test_set_props_stream_in_order_before_the_response(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        result = await tab.call("countdown-display.children", inputs={"start-btn.n_clicks": 1})

    pushes = result.pushes_to("countdown-display", "children")
    assert [p.value for p in pushes] == [f"Countdown: {i}" for i in range(10, 0, -1)]
    assert result.output("countdown-display", "children") == "Done!"
    assert [p.seq for p in pushes] == sorted(p.seq for p in pushes)
    assert pushes[-1].seq < result.seq
    # Sent at once, not with the response: the first push came >= 9 ticks early.
    assert result.received_at - pushes[0].received_at >= 9 * TICK * 0.8


async def test_batches_both_ways(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        burst = await tab.call("burst-out.children", inputs={"burst-btn.n_clicks": 1})
        frame = client.frames[client.messages[burst.seq].frame]
        assert frame.batch and isinstance(json.loads(frame.text), list)
        in_frame = [(m["type"], m.get("payload", {}).get("componentId")) for m in frame.messages
                    if m["type"] == "callback_response" or
                    str(m.get("payload", {}).get("componentId")).startswith("burst-")]
        assert in_frame == [("set_props", f"burst-{i}") for i in range(5)] + [
            ("callback_response", None)]

        # Inbound: two requests and a heartbeat in one frame.
        spec = await client.callback("multi-a.children")
        payloads = [build_payload(spec, inputs={"multi-btn.n_clicks": n}) for n in (1, 2)]
        await client.send([
            {"type": "callback_request", "rendererId": tab.id, "requestId": "in-1",
             "payload": payloads[0]},
            {"type": "heartbeat"},
            {"type": "callback_request", "rendererId": tab.id, "requestId": "in-2",
             "payload": payloads[1]},
        ])

        def answered() -> dict[str, Any] | None:
            got = {r.message["requestId"]: r.message["payload"]
                   for r in client.of_type("callback_response")
                   if r.message["requestId"] in ("in-1", "in-2")}
            return got if len(got) == 2 and client.of_type("heartbeat_ack") else None

        got = await client.wait_for(answered, "answers to the batch", 5)
        assert got["in-2"]["data"]["response"]["multi-b"] == {"children": "b2"}


# -------------------------------------------------------------------------- get_prop


async def test_get_prop_round_trip(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer(props={"name-input.value": "Alice"})
        result = await tab.call("greeting-output.children", inputs={"greet-btn.n_clicks": 1})
        [request] = [r.message for r in client.of_type("get_props_request")]
    assert result.output("greeting-output", "children") == "Hello, Alice!"
    assert request == {"type": "get_props_request", "rendererId": tab.id,
                       "requestId": request["requestId"],
                       "payload": {"componentId": "name-input", "properties": ["value"]}}


async def test_get_prop_timeout_raises_in_the_callback(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        tab.answer_get_props = False
        result = await tab.call("probe-out.children", inputs={"probe-btn.n_clicks": 1},
                                state={"probe-in.placeholder": "0.3"})
        assert result.output("probe-out", "children") == (
            "TimeoutError: get_prop('probe-in', 'value'): no answer within 0.3 s")
        assert result.duration >= 0.3
        # The answer that comes too late is refused, and the connection stays usable.
        [late] = tab.get_props_requests
        await tab.send({"type": "get_props_response", "requestId": late.request_id,
                        "payload": {"value": "late"}})
        error = await tab.wait_for_error("unknown_request")
        assert error["requestId"] == late.request_id
        tab.answer_get_props = True
        tab.set_prop("probe-in", "value", "now")
        again = await tab.call("probe-out.children", inputs={"probe-btn.n_clicks": 2})
        assert again.output("probe-out", "children") == "got 'now'"


# ------------------------------------------------------------------------- renderers


async def test_two_renderers_on_one_connection_get_only_their_own_pushes(
        basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        first = await client.open_renderer()
        second = await client.open_renderer()
        calls = [await tab.start("countdown-display.children",
                                 inputs={"start-btn.n_clicks": 1}) for tab in (first, second)]
        results = [await call.result() for call in calls]
        await first.wait_for_push("live", "children", count=2)
        await second.wait_for_push("live", "children", count=2)
    for tab, result in zip((first, second), results, strict=True):
        assert {p.renderer_id for p in tab.pushes} == {tab.id}
        countdown = tab.pushes_to("countdown-display", "children")
        assert [p.value for p in countdown] == [f"Countdown: {i}" for i in range(10, 0, -1)]
        assert result.output("countdown-display", "children") == "Done!"
    # One persistent instance each, and not the same one.
    live = [instances(tab.pushes_to("live", "children")) for tab in (first, second)]
    assert len(live[0]) == len(live[1]) == 1 and live[0] != live[1]
    assert client.generation == 1


async def test_persistent_spawns_once_with_renderer_joined(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()  # sends renderer_joined
        [persistent] = await client.persistent_callbacks()
        await tab.start(persistent)  # the renderer also asks for it...
        await tab.join()  # ...and joins twice
        await tab.start(persistent)
        await tab.wait_for_push("live", "children", count=5)
        await client.heartbeat()  # everything above was handled
        assert len(await events(client, tab, "persistent_started")) == 1
        assert len(instances(tab.pushes_to("live", "children"))) == 1


@pytest.mark.parametrize("first_message", ["persistent", "countdown"])
async def test_persistent_spawns_once_with_dash_worker_behaviour(
        basic: ServerProcess, first_message: str) -> None:
    """Dash's worker never sends renderer_joined: the first callback_request starts it."""
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer(join=False)
        await client.heartbeat()
        assert await events(client, tab) == []  # not started before the tab speaks
        [persistent] = await client.persistent_callbacks()
        if first_message == "persistent":
            await tab.start(persistent)
            await tab.start(persistent)
        else:
            await tab.call("countdown-display.children", inputs={"start-btn.n_clicks": 1})
            await tab.start(persistent)
        await tab.wait_for_push("live", "children", count=3)
        await client.heartbeat()
        assert len(await events(client, tab, "persistent_started")) == 1
        assert len(instances(tab.pushes_to("live", "children"))) == 1


async def test_renderer_left_cancels_only_that_renderers_callbacks(
        basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        leaving = await client.open_renderer()
        staying = await client.open_renderer()
        for tab in (leaving, staying):
            await tab.start("task-status.children", inputs={"task-btn.n_clicks": 1})
            await tab.wait_for_push("task-progress", "children")
        await leaving.leave()
        cancelled = await wait_for_event(client, leaving, "task_cancelled")
        stopped = await wait_for_event(client, leaving, "persistent_stopped")
        assert len(cancelled) == 1 and stopped[0]["shutdown"] is True
        # The other tab's callbacks run on.
        mark = len(staying.pushes)
        await staying.wait_for_push("task-progress", "children", since=mark, count=2)
        await staying.wait_for_push("live", "children", since=mark, count=2)
        assert await events(client, staying, "task_cancelled") == []
        assert await events(client, staying, "persistent_stopped") == []
        assert not client.closed


async def test_reconnect_respawns_persistent_callbacks(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        before = instances(await tab.wait_for_push("live", "children", count=2))
        await client.reconnect()  # the worker re-sends renderer_joined on reopening
        mark = len(tab.pushes)
        after = instances(await tab.wait_for_push("live", "children", count=2, since=mark))
        started = await wait_for_event(client, tab, "persistent_started", count=2)
        await wait_for_event(client, tab, "persistent_stopped")
    assert len(before) == len(after) == 1 and before != after
    assert len(started) == 2 and client.generation == 2


async def test_disconnect_cancels_event_triggered_callbacks(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        await tab.start("task-status.children", inputs={"task-btn.n_clicks": 1})
        await tab.wait_for_push("task-progress", "children")
        await client.disconnect()
        # CancelledError reached the callback, and its (awaiting) cleanup ran.
        assert len(await wait_for_event(client, tab, "task_cancelled")) == 1
        stopped = await wait_for_event(client, tab, "persistent_stopped")
        assert stopped[0]["shutdown"] is True


# ------------------------------------------------------------------- origins, hooks


async def test_foreign_origin_is_rejected_after_the_handshake(basic: ServerProcess) -> None:
    async with DashClient(basic.url, origin="http://evil.example") as client:
        await client.connect()
        assert await client.wait_closed() == (4001, "Origin not allowed")
    async with DashClient(basic.url, origin=None) as client:
        await client.connect()
        assert await client.wait_closed() == (4001, "Origin header required")
    # The bare wire: the handshake succeeds (no HTTP 403), then a close frame.
    async with connect(basic.ws_url("/_dash-ws-callback"), origin="http://evil.example",  # type: ignore[arg-type]
                       open_timeout=5, proxy=None) as ws:
        with pytest.raises(WsConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4001, "Origin not allowed")


@pytest.mark.parametrize("origin", [
    None,  # the server's own origin (the default)
    "http://allowed.example",  # exact entry
    "https://app.trusted.example",  # "https://*.trusted.example"
    "HTTPS://Deep.App.Trusted.Example/",  # case and a trailing slash do not matter
])
async def test_allowed_origins(guarded: ServerProcess, origin: str | None) -> None:
    options = {} if origin is None else {"origin": origin}
    async with DashClient(guarded_url(guarded), **options) as client:
        tab = await client.open_renderer()
        result = await tab.call("echo-out.children", inputs={"echo-btn.n_clicks": 1})
        assert result.output("echo-out", "children") == "echo 1"


@pytest.mark.parametrize("origin", [
    "https://trusted.example.evil.com",
    "http://app.trusted.example",  # the pattern says https
    "http://allowed.example.evil.com",
])
async def test_origins_outside_the_allowed_list(guarded: ServerProcess, origin: str) -> None:
    async with DashClient(guarded_url(guarded), origin=origin) as client:
        await client.connect()
        assert await client.wait_closed() == (4001, "Origin not allowed")


@pytest.mark.parametrize(("header", "code", "reason"), [
    ("dash-hook", 4403, "dash hook says no"),  # dash.hooks.websocket_connect
    ("blueprint", 4404, "blueprint hook says no"),  # DashBlueprint.websocket_connect
    ("false", 4001, "Rejected by hook"),  # a hook that returns False
])
async def test_connect_hooks_reject(guarded: ServerProcess, header: str, code: int,
                                    reason: str) -> None:
    async with DashClient(guarded_url(guarded), headers={"X-Reject": header}) as client:
        await client.connect()
        assert await client.wait_closed() == (code, reason)


async def test_message_hooks(guarded: ServerProcess) -> None:
    async with DashClient(guarded_url(guarded)) as client:
        tab = await client.open_renderer()
        # DashBlueprint.websocket_message with code 0: refuse one message, stay open.
        await tab.start("refused-out.children", inputs={"refused-btn.n_clicks": 1})
        error = await tab.wait_for_error("rejected")
        assert error["payload"]["message"] == "refused by the blueprint's message hook"
        ok = await tab.call("echo-out.children", inputs={"echo-btn.n_clicks": 2})
        assert ok.output("echo-out", "children") == "echo 2"
        # dash.hooks.websocket_message returning (code, reason): close.
        pending = await tab.start("forbidden-out.children", inputs={"forbidden-btn.n_clicks": 1})
        assert await client.wait_closed() == (4402, "forbidden message")
        assert not pending.done()


# --------------------------------------------------------------------------- callbacks


async def test_request_for_a_non_websocket_callback(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        result = await tab.call("dropdown-output.children",
                                inputs={"my-dropdown.value": "Option C"})
        assert (result.status, result.code) == ("error", "not_websocket")
        # The same callback works over HTTP, as the renderer would send it.
        http = await client.call_http("dropdown-output.children",
                                      inputs={"my-dropdown.value": "Option C"})
        assert http.output("dropdown-output", "children") == "Selected: Option C"
        assert not client.closed


async def test_ctx_websocket_is_none_over_http(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        over_http = await client.call_http("transport-out.children",
                                           inputs={"transport-btn.n_clicks": 1})
        tab = await client.open_renderer()
        over_ws = await tab.call("transport-out.children", inputs={"transport-btn.n_clicks": 2})
    assert over_http.output("transport-out", "children") == "http (ctx.websocket is None)"
    assert over_ws.output("transport-out", "children") == "websocket"


async def test_close_from_a_callback(basic: ServerProcess) -> None:
    async with DashClient(basic.url) as client:
        tab = await client.open_renderer()
        await tab.start("close-status.children", inputs={"close-btn.n_clicks": 1})
        assert await client.wait_closed() == (4001, "Policy violation")
        after = await wait_for_event(client, tab, "after_close")
        assert after[0]["is_shutdown"] is True
        # Its post-close cleanup (which awaits) still ran, and sent nothing.
        await wait_for_event(client, tab, "close_cleanup_done")
        assert tab.pushes_to("close-status", "children") == []


def test_sync_persistent_callback_warns_at_registration() -> None:
    app = Dash(__name__, websocket_callbacks=True)
    app.layout = html.Div(id="x")
    with pytest.warns(RuntimeWarning, match="synchronous"):

        @app.callback(persistent=True)
        def blocking_loop() -> None:
            return None
