"""quartdash.testing.DashClient, in-process (Quart's test client): fast unit tests.

The app is tests/apps/ws_basic.py (the seed's examples). Every test talks
to the real routes: _dash-dependencies, _dash-update-component and the
_dash-ws-callback WebSocket.
"""

from __future__ import annotations

import time

import pytest
from dash import Input, Output, State, html
from quart import Quart, abort

from quartdash import DashBlueprint
from quartdash.testing import (
    CallbackSpec,
    ConnectionClosed,
    DashClient,
    HandshakeRejected,
    WaitTimeout,
    build_payload,
    prop_key,
    resolve_callback,
)
from tests.apps import ws_basic

ITEM_BTN = {"type": "item-btn", "index": 1}
ITEM_IN = {"type": "item-in", "index": 1}
ITEM_OUT = {"type": "item-out", "index": 1}


async def test_countdown_streams_in_order_then_returns() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        result = await tab.call("countdown-display.children", inputs={"start-btn.n_clicks": 1})

    values = [p.value for p in result.pushes_to("countdown-display", "children")]
    assert values == [f"Countdown: {i}" for i in range(10, 0, -1)]
    assert result.output("countdown-display", "children") == "Done!"
    # Every push arrived before the response, in the order they were made.
    seqs = [p.seq for p in result.pushes]
    assert seqs == sorted(seqs) and seqs[-1] < result.seq
    # The fake layout took the final value, as the renderer would.
    assert tab.prop("countdown-display", "children") == "Done!"


async def test_greeting_reads_the_fake_layout_with_get_prop() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer(props={"name-input.value": "Alice"})
        result = await tab.call("greeting-output.children", inputs={"greet-btn.n_clicks": 1})
        assert result.output("greeting-output", "children") == "Hello, Alice!"
        assert [p.value for p in result.pushes_to("greeting-output", "children")] == [
            "Processing for Alice..."]
        [request] = tab.get_props_requests
        assert (request.component_id, request.properties) == ("name-input", ["value"])
        assert request.answer == {"value": "Alice"}

        # props can change at any time; an unknown prop answers {} (-> None).
        tab.set_prop("name-input", "value", "Bob")
        again = await tab.call("greeting-output.children", inputs={"greet-btn.n_clicks": 2})
        assert again.output("greeting-output", "children") == "Hello, Bob!"
        del tab.props["name-input.value"]
        unknown = await tab.call("greeting-output.children", inputs={"greet-btn.n_clicks": 3})
        assert unknown.output("greeting-output", "children") == "Hello, None!"
        assert tab.get_props_requests[-1].answer == {}


async def test_pattern_matching_match_output_and_all_inputs() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        # MATCH: a concrete output id picks the component; inputs as (ref, value) pairs.
        result = await tab.call((ITEM_OUT, "children"), inputs=[((ITEM_BTN, "n_clicks"), 3)],
                                state=[((ITEM_IN, "value"), "x")])
        assert result.output(ITEM_OUT, "children") == "item 1: x x3"

        # ALL: every matching component the fake layout knows, in order.
        tab.set_prop({"type": "item-in", "index": 2}, "value", "two")
        total = await tab.call("item-total.children", inputs={prop_key(ITEM_IN, "value"): "one"})
        assert total.output("item-total", "children") == "one+two (2)"


async def test_multi_output() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        result = await tab.call(["multi-a.children", "multi-b.children"],
                                inputs={"multi-btn.n_clicks": 4})
        assert result.output("multi-a", "children") == "a4"
        assert result.output("multi-b", "children") == "b4"
        # Picking the callback by its input alone works too.
        by_input = await tab.call(inputs={"multi-btn.n_clicks": 5})
        assert by_input.response == {"multi-a": {"children": "a5"}, "multi-b": {"children": "b5"}}


async def test_http_callbacks() -> None:
    async with DashClient(ws_basic.app) as client:
        dropdown = await client.call_http("dropdown-output.children",
                                          inputs={"my-dropdown.value": "Option B"})
        assert dropdown.status_code == 200
        assert dropdown.output("dropdown-output", "children") == "Selected: Option B"
        tab = await client.open_renderer()
        over_http = await tab.call_http("transport-out.children",
                                        inputs={"transport-btn.n_clicks": 1})
        over_ws = await tab.call("transport-out.children", inputs={"transport-btn.n_clicks": 2})
    assert over_http.output("transport-out", "children") == "http (ctx.websocket is None)"
    assert over_ws.output("transport-out", "children") == "websocket"


async def test_payload_matches_what_the_renderer_sends() -> None:
    async with DashClient(ws_basic.app) as client:
        item = await client.callback(Output(ITEM_OUT, "children"))
        multi = await client.callback(inputs={"multi-btn.n_clicks": 1})
    payload = build_payload(item, inputs=[((ITEM_BTN, "n_clicks"), 2)],
                            props={prop_key(ITEM_IN, "value"): "v"})
    assert payload == {
        "output": '{"index":["MATCH"],"type":"item-out"}.children',
        "outputs": {"id": ITEM_OUT, "property": "children"},
        "inputs": [{"id": ITEM_BTN, "property": "n_clicks", "value": 2}],
        "changedPropIds": ['{"index":1,"type":"item-btn"}.n_clicks'],
        "parsedChangedPropsIds": [ITEM_BTN],
        "state": [{"id": ITEM_IN, "property": "value", "value": "v"}],
    }
    # No value for an input the layout lacks (the renderer sends undefined);
    # multi-output callbacks send a list of outputs; no state -> no "state".
    assert build_payload(multi, triggered=[]) == {
        "output": "..multi-a.children...multi-b.children..",
        "outputs": [{"id": "multi-a", "property": "children"},
                    {"id": "multi-b", "property": "children"}],
        "inputs": [{"id": "multi-btn", "property": "n_clicks"}],
        "changedPropIds": [],
        "parsedChangedPropsIds": [],
    }


def test_resolution_errors_are_clear() -> None:
    specs = [CallbackSpec.from_dependency(d) for d in (
        {"output": "a.children", "inputs": [{"id": "b", "property": "n_clicks"}], "state": []},
        {"output": "a.children@x1", "inputs": [{"id": "c", "property": "n_clicks"}], "state": []},
    )]
    assert resolve_callback(specs, "a.children").id == "a.children"  # an exact id wins
    with pytest.raises(LookupError, match=r"2 callbacks have output a\.children"):
        resolve_callback(specs, ("a", "children"))
    assert resolve_callback(specs, ("a", "children"), inputs={"c.n_clicks": 1}).id == (
        "a.children@x1")
    with pytest.raises(LookupError, match=r"no callback with output nope\.children"):
        resolve_callback(specs, "nope.children")
    with pytest.raises(ValueError, match="not an input"):
        build_payload(specs[0], inputs={"c.n_clicks": 1})
    with pytest.raises(ValueError, match="MATCH"):
        build_payload(CallbackSpec.from_dependency({
            "output": '{"i":["MATCH"]}.children',
            "inputs": [{"id": '{"i":["MATCH"]}', "property": "n_clicks"}], "state": []}))


async def test_waits_time_out_naming_what_they_waited_for() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        started = time.monotonic()
        with pytest.raises(WaitTimeout, match=r"push\(es\) to nowhere.children") as caught:
            await tab.wait_for_push("nowhere", "children", timeout=0.2)
        assert time.monotonic() - started < 1.0
    assert isinstance(caught.value, AssertionError) and isinstance(caught.value, TimeoutError)


async def test_renderers_share_one_connection_and_keep_their_pushes() -> None:
    async with DashClient(ws_basic.app) as client:
        first = await client.open_renderer()
        second = await client.open_renderer()
        result = await first.call("countdown-display.children", inputs={"start-btn.n_clicks": 1})
        await second.wait_for_push("live", "children", count=2)
    assert len(result.pushes_to("countdown-display", "children")) == 10
    assert second.pushes_to("countdown-display", "children") == []
    assert {p.renderer_id for p in first.pushes} == {first.id}
    assert {p.renderer_id for p in second.pushes} == {second.id}
    assert client.generation == 1  # one WebSocket for both


async def test_batches_are_split_and_can_be_sent() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        burst = await tab.call("burst-out.children", inputs={"burst-btn.n_clicks": 1})
        # Pushed with no await in between: one array frame with the response.
        frame = client.frames[client.messages[burst.seq].frame]
        assert frame.batch
        kinds = [m["type"] for m in frame.messages]
        assert kinds[-1] == "callback_response" and kinds.count("set_props") >= 5
        assert [p.value for p in burst.pushes if p.component_id.startswith("burst-")] == [
            0, 1, 2, 3, 4]

        # A batch the client sends: two requests in one frame, both answered
        # (the same callback twice: the newest wins, the first settles at once).
        spec = await client.callback("multi-a.children")
        await client.send([
            {"type": "callback_request", "rendererId": tab.id, "requestId": f"b{n}",
             "payload": build_payload(spec, inputs={"multi-btn.n_clicks": n})}
            for n in (1, 2)
        ])

        def both() -> dict[str, object] | None:
            got = {r.message["requestId"]: r.message["payload"]
                   for r in client.of_type("callback_response")
                   if r.message["requestId"] in ("b1", "b2")}
            return got if len(got) == 2 else None

        answered = await client.wait_for(both, "the responses to b1 and b2", 5)
        assert answered["b1"] == {"status": "prevent_update"}
        assert answered["b2"]["data"]["response"] == {  # type: ignore[index]
            "multi-a": {"children": "a2"}, "multi-b": {"children": "b2"}}


async def test_server_close_exposes_code_and_reason() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        pending = await tab.start("close-status.children", inputs={"close-btn.n_clicks": 1})
        code, reason = await client.wait_closed(timeout=5)
        assert (code, reason) == (4001, "Policy violation")
        with pytest.raises(ConnectionClosed, match="4001") as caught:
            await pending.result(timeout=1)
        assert caught.value.reason == "Policy violation"
        with pytest.raises(ConnectionClosed):
            await tab.call("multi-a.children", inputs={"multi-btn.n_clicks": 1})


async def test_origin_rejected_in_process() -> None:
    async with DashClient(ws_basic.app, origin="http://evil.example") as client:
        await client.connect()
        code, reason = await client.wait_closed()
    assert code == 4001 and reason == "Origin not allowed"  # the origin is not echoed


async def test_handshake_rejected_before_accept() -> None:
    asgi = Quart(__name__)
    bp = DashBlueprint("denied", __name__, url_prefix="/denied")
    bp.layout = html.Div()

    @asgi.before_websocket
    async def deny() -> None:
        abort(403)  # the Quart way: no handshake at all

    asgi.register_blueprint(bp)
    async with DashClient(bp, server=asgi) as client:
        with pytest.raises(HandshakeRejected) as rejected:
            await client.connect()
    assert rejected.value.status == 403


async def test_a_call_from_before_a_reconnect_fails_clearly() -> None:
    async with DashClient(ws_basic.app) as client:
        tab = await client.open_renderer()
        pending = await tab.start("task-status.children", inputs={"task-btn.n_clicks": 1})
        await client.reconnect()
        with pytest.raises(ConnectionClosed, match="reconnected"):
            await pending.result(timeout=1)
        # The tab re-joined the new connection: its persistent callback runs again.
        await tab.wait_for_push("live", "children", since=len(tab.pushes))


async def test_blueprint_and_quart_app_targets() -> None:
    asgi = Quart(__name__)
    bp = DashBlueprint("inproc", __name__, url_prefix="/bp", websocket_callbacks=True)
    bp.layout = html.Div([html.Button(id="b"), html.Div(id="o"), html.Div(id="s")])

    @bp.callback(Output("o", "children"), Input("b", "n_clicks"), State("s", "children"))
    async def echo(n: int | None, s: str | None) -> str:
        return f"{n}/{s}"

    asgi.register_blueprint(bp)
    async with DashClient(bp, server=asgi) as by_blueprint:
        assert by_blueprint.prefix == "/bp/"
        tab = await by_blueprint.open_renderer(props={"s.children": "state"})
        result = await tab.call("o.children", inputs={"b.n_clicks": 2})
        assert result.output("o", "children") == "2/state"
    async with DashClient(asgi, "/bp/") as by_app:
        http = await by_app.call_http("o.children", inputs={"b.n_clicks": 3},
                                      state={"s.children": "x"})
        assert http.output("o", "children") == "3/x"
    with pytest.raises(TypeError, match="server="):
        DashClient(bp)


async def test_dash_client_fixture(dash_client) -> None:
    client = await dash_client(ws_basic.app)
    tab = await client.open_renderer()
    pushes = await tab.wait_for_push("live", "children", count=2, timeout=2)
    assert [p.value.split(":")[0] for p in pushes][:2] == [pushes[0].value.split(":")[0]] * 2
    await client.heartbeat()
    # torn down by the fixture (disconnect): nothing to do here
