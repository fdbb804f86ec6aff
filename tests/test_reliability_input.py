"""Hostile and broken input on the WebSocket, against a real hypercorn.

Every case gets a clear ``error`` message (or ``callback_response`` with
``status: "error"`` and a ``code``) or a documented close code, and neither
the attacked connection (unless it is closed on purpose) nor any other
session is disturbed: a *bystander* connection keeps its persistent callback
ticking and answers an echo round trip after each case.

Limits of the served app (tests/apps/rel_app.py defaults): frames up to
64 KiB, 20 messages per batch, 200 messages per second (burst 400), 8
callbacks at once and 4 tabs per connection.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection

from tests.apps import rel_client as rc
from tests.helpers import REPO_ROOT

APP = "tests.apps.rel_app:asgi"
ECHO_STATE = [{"id": "echo-in", "property": "value", "value": "x"}]


@pytest.fixture
def server(serve_app_session: Any) -> Any:
    return serve_app_session(APP)


@pytest_asyncio.fixture
async def bystander(server: Any) -> AsyncIterator[rc.Bystander]:
    guard = await rc.Bystander.join(server)
    yield guard
    await guard.leave()


@pytest_asyncio.fixture
async def ws(server: Any) -> AsyncIterator[ClientConnection]:
    conn = await rc.open_ws(server)
    yield conn
    await conn.close()


def with_payload(**changes: Any) -> dict[str, Any]:
    message = rc.echo(request_id="bad")
    message["payload"] = {**message["payload"], **changes}
    return message


def without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != key}


# Frames that are not valid protocol, and the error code each must produce.
BAD_FRAMES: dict[str, tuple[str | bytes, str]] = {
    "not JSON": ("this is not json", "bad_json"),
    "truncated JSON": ('{"type": "heartbeat"', "bad_json"),
    "invalid UTF-8": (b"\xff\xfe{}", "bad_json"),
    "JSON number": ("42", "bad_message"),
    "JSON string": ('"callback_request"', "bad_message"),
    "JSON null": ("null", "bad_message"),
    "array of numbers": ("[1]", "bad_message"),
    "object without type": ("{}", "bad_message"),
    "type not a string": ('{"type": 7}', "bad_message"),
    "unknown type": ('{"type": "launch_missiles"}', "bad_message"),
    "callback_request without requestId": (json.dumps(without(rc.echo(), "requestId")),
                                           "bad_message"),
    "requestId not a string": (json.dumps({**rc.echo(), "requestId": 5}), "bad_message"),
    "rendererId not a string": (json.dumps({**rc.echo(), "rendererId": ["r"]}), "bad_message"),
    "payload not an object": (json.dumps({**rc.echo(), "payload": "x"}), "bad_message"),
    "output missing": (json.dumps(with_payload(output=None)), "bad_message"),
    "inputs not a list": (json.dumps(with_payload(inputs={"id": "echo-btn"})), "bad_message"),
    "input entry not an object": (json.dumps(with_payload(inputs=[42])), "bad_message"),
    "input entry without property": (json.dumps(with_payload(inputs=[{"id": "echo-btn"}])),
                                     "bad_message"),
    "state entry with a numeric id": (
        json.dumps(with_payload(state=[{"id": 3, "property": "value"}])), "bad_message"),
    "outputs entry not an object": (json.dumps(with_payload(outputs=["x"])), "bad_message"),
    "changedPropIds not strings": (json.dumps(with_payload(changedPropIds=[1])), "bad_message"),
    "get_props_response payload not an object": (json.dumps(
        {"type": "get_props_response", "rendererId": "r1", "requestId": "p1", "payload": [1]}),
        "bad_message"),
    "renderer_joined without rendererId": ('{"type": "renderer_joined"}', "bad_message"),
}


@pytest.mark.parametrize("frame, code", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
async def test_malformed_frame_gets_an_error(ws: ClientConnection, bystander: rc.Bystander,
                                             frame: str | bytes, code: str) -> None:
    await rc.send(ws, frame)
    error = await rc.recv_until(ws, rc.of_type("error"))
    assert error["payload"]["code"] == code, error
    assert error["payload"]["message"]
    await rc.expect_alive(ws)


async def test_a_bad_message_in_a_batch_spares_the_good_ones(ws: ClientConnection,
                                                            bystander: rc.Bystander) -> None:
    await rc.send(ws, [{"type": "nope"}, rc.echo(request_id="good"), 17])
    seen: list[dict[str, Any]] = []
    await rc.recv_until(ws, lambda m: seen.append(m) or m.get("requestId") == "good")
    errors = [m for m in seen if m["type"] == "error"]
    assert len(errors) == 2 and all(e["payload"]["code"] == "bad_message" for e in errors)
    response = seen[-1]
    assert response["type"] == "callback_response" and response["payload"]["status"] == "ok"


@pytest.mark.parametrize("inputs, state, why", [
    ([], ECHO_STATE, "takes 1 inputs, the request has 0"),
    ([{"id": "echo-btn", "property": "n_clicks", "value": 1}] * 2, ECHO_STATE,
     "takes 1 inputs, the request has 2"),
    ([{"id": "echo-btn", "property": "n_clicks", "value": 1}], [], "takes 1 state"),
], ids=["too few inputs", "too many inputs", "missing state"])
async def test_inputs_not_matching_the_signature(server: Any, ws: ClientConnection,
                                                 bystander: rc.Bystander, inputs: list[Any],
                                                 state: list[Any], why: str) -> None:
    ran = (await rc.astats(server))["counters"].get("echo", 0)
    await rc.send(ws, rc.request("echo-out.children", inputs, state, request_id="sig"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "sig"))
    assert reply["payload"]["status"] == "error"
    assert reply["payload"]["code"] == "bad_message"
    assert why in reply["payload"]["message"]
    assert (await rc.astats(server))["counters"].get("echo", 0) == ran  # never called
    await rc.expect_alive(ws)


async def test_frame_larger_than_the_limit_closes_1008(server: Any, ws: ClientConnection,
                                                       bystander: rc.Bystander) -> None:
    # Just under the limit is served...
    under = json.dumps({"type": "heartbeat", "pad": "x" * (65536 - 40)})
    assert len(under) <= 65536
    await rc.send(ws, under)
    await rc.recv_until(ws, rc.of_type("heartbeat_ack"))
    # ...one byte over is closed with the documented code.
    over = json.dumps({"type": "heartbeat", "pad": "x" * 65536})
    await rc.send(ws, over)
    assert await rc.wait_closed(ws) == 1008


async def test_batch_with_too_many_messages(server: Any, ws: ClientConnection,
                                            bystander: rc.Bystander) -> None:
    await rc.send(ws, [{"type": "heartbeat"}] * 20)  # the limit itself is fine
    await rc.recv_until(ws, rc.of_type("heartbeat_ack"))
    ran = (await rc.astats(server))["counters"].get("echo", 0)
    await rc.send(ws, [rc.echo(request_id=f"b{i}") for i in range(21)])
    error = await rc.recv_until(ws, rc.of_type("error"))
    assert error["payload"]["code"] == "batch_too_large"
    assert "21" in error["payload"]["message"] and "20" in error["payload"]["message"]
    assert (await rc.astats(server))["counters"].get("echo", 0) == ran  # none of it ran
    await rc.expect_alive(ws)


async def test_unknown_callback(ws: ClientConnection, bystander: rc.Bystander) -> None:
    await rc.send(ws, rc.click("ghost-btn", "ghost.children", request_id="u1"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "u1"))
    assert reply["payload"] == {"status": "error", "code": "unknown_callback",
                                "message": "no callback 'ghost.children' in this app"}
    await rc.expect_alive(ws)


async def test_callback_that_is_not_websocket_enabled(ws: ClientConnection,
                                                      bystander: rc.Bystander) -> None:
    await rc.send(ws, rc.click("http-btn", "http-out.children", request_id="h1"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "h1"))
    assert reply["payload"]["status"] == "error"
    assert reply["payload"]["code"] == "not_websocket"
    assert "websocket=True" in reply["payload"]["message"]
    await rc.expect_alive(ws)


async def test_request_id_already_in_flight(ws: ClientConnection, bystander: rc.Bystander) -> None:
    first = rc.click("gp-btn", "gp-out.children", request_id="dup")
    await rc.send(ws, first)
    ask = await rc.recv_until(ws, rc.of_type("get_props_request"))
    await rc.send(ws, first)  # same requestId while the first still runs
    error = await rc.recv_until(ws, rc.of_type("error", "dup"))
    assert error["payload"]["code"] == "duplicate_request"
    # The first run is untouched and answers exactly once.
    await rc.send(ws, {"type": "get_props_response", "rendererId": "r1",
                       "requestId": ask["requestId"], "payload": {"value": "v"}})
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "dup"))
    assert reply["payload"]["status"] == "ok"
    assert reply["payload"]["data"]["response"]["gp-out"]["children"] == "got v"
    # Once answered, the id is free again.
    await rc.send(ws, rc.echo(request_id="dup"))
    again = await rc.recv_until(ws, rc.of_type("callback_response", "dup"))
    assert again["payload"]["status"] == "ok"


async def test_get_props_response_for_unknown_request(ws: ClientConnection,
                                                      bystander: rc.Bystander) -> None:
    await rc.send(ws, {"type": "get_props_response", "rendererId": "r1", "requestId": "p999",
                       "payload": {"value": 1}})
    error = await rc.recv_until(ws, rc.of_type("error", "p999"))
    assert error["payload"]["code"] == "unknown_request"
    await rc.expect_alive(ws)


async def test_get_props_response_answered_twice(ws: ClientConnection,
                                                 bystander: rc.Bystander) -> None:
    await rc.send(ws, rc.click("gp-btn", "gp-out.children", request_id="g1"))
    ask = await rc.recv_until(ws, rc.of_type("get_props_request"))
    answer = {"type": "get_props_response", "rendererId": "r1", "requestId": ask["requestId"],
              "payload": {"value": "first"}}
    await rc.send(ws, answer)
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "g1"))
    assert reply["payload"]["data"]["response"]["gp-out"]["children"] == "got first"
    await rc.send(ws, {**answer, "payload": {"value": "second"}})
    error = await rc.recv_until(ws, rc.of_type("error", ask["requestId"]))
    assert error["payload"]["code"] == "unknown_request"
    await rc.expect_alive(ws)


async def test_get_props_response_from_another_tab(ws: ClientConnection,
                                                   bystander: rc.Bystander) -> None:
    # Tab r2 cannot answer (or steal) a question the server asked tab r1.
    await rc.send(ws, rc.click("gp-btn", "gp-out.children", renderer="r1", request_id="g2"))
    ask = await rc.recv_until(ws, rc.of_type("get_props_request"))
    await rc.send(ws, {"type": "get_props_response", "rendererId": "r2",
                       "requestId": ask["requestId"], "payload": {"value": "stolen"}})
    error = await rc.recv_until(ws, rc.of_type("error", ask["requestId"]))
    assert error["payload"]["code"] == "unknown_request"
    await rc.send(ws, {"type": "get_props_response", "rendererId": "r1",
                       "requestId": ask["requestId"], "payload": {"value": "mine"}})
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "g2"))
    assert reply["payload"]["data"]["response"]["gp-out"]["children"] == "got mine"


async def test_flood_closes_4008(server: Any, ws: ClientConnection,
                                 bystander: rc.Bystander) -> None:
    floods = (await rc.astats(server))["close_codes"].get("4008", 0)
    # A burst inside the allowance (2 s worth: 400) is served...
    await rc.send(ws, [{"type": "heartbeat"}] * 20)
    for _ in range(9):
        await rc.send(ws, [{"type": "heartbeat"}] * 20)
    await rc.recv_until(ws, rc.of_type("heartbeat_ack"))
    await rc.expect_alive(ws)
    # ...sustained sending faster than 200 messages per second is not.
    for _ in range(40):
        await rc.send(ws, [{"type": "heartbeat"}] * 20)
    assert await rc.wait_closed(ws) == 4008
    await rc.wait_stats(server, lambda s: s["close_codes"].get("4008", 0) == floods + 1,
                        what="the server to record the 4008 close")


async def test_too_many_concurrent_callbacks(server: Any, ws: ClientConnection,
                                             bystander: rc.Bystander) -> None:
    # Cap 8 per connection; tab r1's persistent callback counts as one.
    for i in range(7):
        await rc.send(ws, rc.click("slow-btn", "slow-out.children", request_id=f"s{i}"))
    await rc.send(ws, rc.click("slow-btn", "slow-out.children", request_id="s-over"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "s-over"))
    assert reply["payload"]["status"] == "error"
    assert reply["payload"]["code"] == "too_many_callbacks"
    # The connection stays up (it just cannot start more) and the seven run on.
    await rc.send(ws, {"type": "heartbeat"})
    await rc.recv_until(ws, rc.of_type("heartbeat_ack"))
    stats = await rc.astats(server)
    assert stats["runs"] >= 8 + 1  # ours, plus the bystander's persistent callback


async def test_errors_never_disturb_other_sessions(server: Any, bystander: rc.Bystander) -> None:
    """Many hostile connections at once; the bystander and the server carry on."""

    async def attacker(n: int) -> None:
        conn = await rc.open_ws(server)
        for frame, _ in BAD_FRAMES.values():
            await rc.send(conn, frame)
        await rc.recv_until(conn, rc.of_type("error"))
        if n % 2:
            rc.reset(conn)
        else:
            await conn.close()

    await asyncio.gather(*(attacker(n) for n in range(10)))
    await bystander.check()
    await rc.wait_stats(server, lambda s: s["sessions"] == 1, what="only the bystander left")


async def test_too_many_tabs_on_one_connection(ws: ClientConnection,
                                               bystander: rc.Bystander) -> None:
    for n in range(4):  # the app allows 4 tabs per connection
        await rc.send(ws, rc.joined(f"tab{n}"))
    await rc.send(ws, rc.echo(renderer="tab4", request_id="fifth"))
    error = await rc.recv_until(ws, rc.of_type("error"))
    assert error["payload"]["code"] == "too_many_renderers"
    assert error["rendererId"] == "tab4"
    # A tab that leaves frees its place.
    await rc.send(ws, {"type": "renderer_left", "rendererId": "tab0"})
    await rc.expect_alive(ws, "tab4", "fifth-again")


# --- the documentation lists every limit, close code and error code ------------------


def test_reliability_doc_lists_every_limit_with_its_default() -> None:
    from dataclasses import MISSING, fields

    from quartdash import CloseCode, ErrorCode, WebSocketConfig

    text = (REPO_ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", text, re.MULTILINE))
    for field in fields(WebSocketConfig):
        name = WebSocketConfig.keyword(field.name)
        assert name in rows, f"docs/reliability.md has no row for {name}"
        if field.name == "max_workers":
            assert rows[name] == "min(32, cpu_count + 4)"
            continue
        default = field.default_factory() if field.default is MISSING else field.default
        assert ast.literal_eval(rows[name].replace("_", "")) == default, name
    for code in CloseCode:
        assert f"| {code.value} |" in text, f"close code {code.value} not in docs/reliability.md"
    for error in ErrorCode:
        assert f"`{error.value}`" in text, f"error code {error.value} not in docs/reliability.md"
