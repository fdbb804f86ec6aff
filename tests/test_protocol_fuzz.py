"""Property-based fuzzing of the wire protocol (hypothesis).

* ``protocol.parse_frame`` never raises anything but ``ProtocolError``
  (its documented error type), whatever the bytes, and what it returns is
  well-typed: the session can trust every field it reads.
* Valid messages are accepted unchanged.
* One level up, a real ``Session`` (in-process app, test-double
  transport) fed the same garbage never raises either, answers with JSON
  frames only, and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest
from dash import Input, Output, State, dcc, html
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quartdash import Dash
from quartdash.session import Session
from quartdash.wire import protocol
from quartdash.wire.protocol import ErrorCode, Message, ProtocolError

MAX_BATCH = 20

# --- strategies ------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
message_types = st.sampled_from([*sorted(protocol.INBOUND_TYPES), "", "set_props", "x"])
# Pattern-matching ids: string keys, string/number/boolean values (Dash's rule).
id_values = st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
dependency = st.fixed_dictionaries(
    {"id": st.text(max_size=8) | st.dictionaries(st.text(max_size=4), id_values, max_size=2),
     "property": st.text(max_size=8)},
    optional={"value": json_values},
)
# Payloads that look like a callback_request's, with any field possibly wrong.
payloads = st.fixed_dictionaries({}, optional={
    "output": st.text(max_size=20) | json_values,
    "outputs": st.lists(dependency | json_values, max_size=3) | dependency | json_values,
    "inputs": st.lists(dependency | st.lists(dependency, max_size=2) | json_values, max_size=3)
    | json_values,
    "state": st.lists(dependency | json_values, max_size=3) | json_values,
    "changedPropIds": st.lists(st.text(max_size=10) | json_values, max_size=3) | json_values,
}) | json_values
# Objects with the protocol's keys, each with a right- or wrong-typed value.
near_messages = st.fixed_dictionaries({}, optional={
    "type": message_types | json_values,
    "rendererId": st.text(max_size=8) | json_values,
    "requestId": st.text(max_size=8) | json_values,
    "payload": payloads,
})
frames_as_json = st.one_of(
    near_messages,
    st.lists(near_messages | json_values, max_size=MAX_BATCH + 3),
    json_values,
).map(lambda value: json.dumps(value))
raw_frames = st.binary(max_size=200) | st.text(max_size=200)
any_frame = frames_as_json | raw_frames

valid_callback_payloads = st.fixed_dictionaries({
    "output": st.text(min_size=1, max_size=20),
    "outputs": dependency | st.lists(dependency, max_size=3),
    "inputs": st.lists(dependency | st.lists(dependency, max_size=2), max_size=3),
    "state": st.lists(dependency, max_size=3),
    "changedPropIds": st.lists(st.text(max_size=10), max_size=3),
})


def check_message(message: Message) -> None:
    """What the session relies on for every message parse_frame lets through."""
    assert message.type in protocol.INBOUND_TYPES
    assert isinstance(message.renderer_id, str)
    if message.type in (protocol.CALLBACK_REQUEST, protocol.GET_PROPS_RESPONSE):
        assert isinstance(message.request_id, str) and message.request_id
        assert isinstance(message.payload, dict)
    if message.type == protocol.CALLBACK_REQUEST:
        assert isinstance(message.payload["output"], str)
        for key in ("inputs", "state"):
            assert isinstance(message.payload.get(key, []), list)
    if message.type in (protocol.RENDERER_JOINED, protocol.RENDERER_LEFT):
        assert message.renderer_id


# --- the parser ------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(any_frame)
def test_parse_frame_raises_only_protocol_error(frame: str | bytes) -> None:
    try:
        messages, errors = protocol.parse_frame(frame, max_batch=MAX_BATCH)
    except ProtocolError as error:
        assert isinstance(error.code, ErrorCode)
        assert error.message
        return
    for message in messages:
        check_message(message)
    for error in errors:
        assert isinstance(error, ProtocolError) and isinstance(error.code, ErrorCode)
        # Every error can be sent back as a valid frame.
        assert orjson.loads(protocol.error_frame(error))["type"] == "error"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=10),
       valid_callback_payloads)
def test_valid_callback_requests_are_accepted(renderer: str, request: str,
                                              payload: dict[str, Any]) -> None:
    frame = json.dumps({"type": "callback_request", "rendererId": renderer,
                        "requestId": request, "payload": payload})
    messages, errors = protocol.parse_frame(frame, max_batch=MAX_BATCH)
    assert errors == []
    (message,) = messages
    assert (message.renderer_id, message.request_id, message.payload) == (
        renderer, request, payload)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.just({"type": "heartbeat"}), min_size=MAX_BATCH + 1, max_size=60))
def test_batches_over_the_limit_are_refused_whole(batch: list[Any]) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_frame(json.dumps(batch), max_batch=MAX_BATCH)
    assert caught.value.code is ErrorCode.BATCH_TOO_LARGE


def test_deeply_nested_json_is_a_protocol_error() -> None:
    # orjson refuses nesting deeper than 1024: that must be *our* error type.
    with pytest.raises(ProtocolError) as caught:
        protocol.parse_frame("[" * 5000 + "]" * 5000, max_batch=MAX_BATCH)
    assert caught.value.code is ErrorCode.BAD_JSON


# --- one level up: a real session ---------------------------------------------------

app = Dash(__name__, websocket_max_batch=MAX_BATCH, websocket_max_messages_per_second=10**6,
           websocket_shutdown_grace=0.5)
app.layout = html.Div([html.Button(id="b"), dcc.Input(id="i"), html.Div(id="o")])


@app.callback(Output("o", "children"), Input("b", "n_clicks"), State("i", "value"),
              websocket=True)
async def echo(n: Any, value: Any) -> str:
    return f"{n}:{value}"


class RecordingTransport:
    """The session's socket, in memory."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def receive(self) -> str:
        await asyncio.Event().wait()  # never used: frames are fed to on_frame
        raise AssertionError("unreachable")

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.sent.append(f"<close {code}>")


async def feed(frames: list[str | bytes]) -> list[bytes]:
    session = Session(app.quartdash_live, {"headers": {}})
    before = asyncio.all_tasks()
    for frame in frames:
        await session.on_frame(frame)
    await asyncio.sleep(0)  # let started callbacks run a step
    pending = session.outbox.drain()
    await session._shutdown(RecordingTransport())
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not leftover, leftover
    assert not session.runs and not session.reads
    return pending


echo_payload = {"output": "o.children", "outputs": {"id": "o", "property": "children"},
                "inputs": [{"id": "b", "property": "n_clicks", "value": 1}],
                "state": [{"id": "i", "property": "value", "value": "v"}],
                "changedPropIds": ["b.n_clicks"]}
session_frames = any_frame | st.builds(
    lambda rid, req, changes: json.dumps({"type": "callback_request", "rendererId": rid,
                                          "requestId": req,
                                          "payload": {**echo_payload, **changes}}),
    st.text(max_size=4), st.text(max_size=4),
    st.dictionaries(st.sampled_from(sorted(echo_payload)), json_values, max_size=2),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(session_frames, min_size=1, max_size=5))
def test_session_never_raises_on_garbage(frames: list[str | bytes]) -> None:
    out = asyncio.run(feed(frames))
    for frame in out:
        decoded = orjson.loads(frame)  # every reply is JSON the worker can parse
        assert isinstance(decoded, dict) and decoded["type"] in {
            "error", "callback_response", "set_props", "get_props_request", "heartbeat_ack"}
