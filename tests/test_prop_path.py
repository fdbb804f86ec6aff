"""get_prop(path=...) at the wire level: Dash 4.5's validation and resolution rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from quartdash.wire import protocol

ROWS = [{"id": i, "price": i * 1.5, "tags": ["a", "b"]} for i in range(5)]


@pytest.mark.parametrize("path, expected", [
    (None, ROWS),
    ([], ROWS),
    ([3, "price"], 4.5),
    ([-1, "id"], 4),
    ([-5, "id"], 0),
    ([0, "tags", 1], "b"),
    ([5, "id"], None),          # out of range
    ([-6, "id"], None),
    ([0, "missing"], None),      # no such key
    (["0", "id"], None),         # a string does not index a list
    ([0, 0], None),              # an integer does not select a key
    ([0, "price", "x"], None),   # nothing inside a number
])
def test_a_path_selects_like_dash_45(path: list[Any] | None, expected: Any) -> None:
    assert protocol.resolve_prop_path(ROWS, path) == expected


def test_a_stored_none_and_a_missing_key_both_read_none() -> None:
    assert protocol.resolve_prop_path({"a": None}, ["a"]) is None
    assert protocol.resolve_prop_path({"a": None}, ["b"]) is None


@pytest.mark.parametrize("path, error", [
    (("a",), TypeError), ("a", TypeError), ({"a": 1}, TypeError),
    ([True], TypeError), ([1.5], TypeError), ([None], TypeError),
    ([2**53], ValueError), ([-(2**53)], ValueError),
])
def test_a_bad_path_is_refused_before_anything_is_sent(path: Any, error: type) -> None:
    with pytest.raises(error):
        protocol.check_prop_path(path)


def test_a_good_path_is_kept() -> None:
    assert protocol.check_prop_path([2**53 - 1, "x", -1]) == [2**53 - 1, "x", -1]
    assert protocol.check_prop_path(None) is None


def test_the_request_carries_the_path_only_when_given() -> None:
    plain = json.loads(protocol.get_props_request_frame("r", "p1", "grid", ["rowData"]))
    assert "path" not in plain["payload"]
    partial = json.loads(protocol.get_props_request_frame("r", "p1", "grid", ["rowData"],
                                                          [5000, "price"]))
    assert partial["payload"] == {"componentId": "grid", "properties": ["rowData"],
                                  "path": [5000, "price"]}
    empty = json.loads(protocol.get_props_request_frame("r", "p1", "grid", ["rowData"], []))
    assert empty["payload"]["path"] == []


def test_an_answer_says_whether_it_is_already_resolved() -> None:
    base = {"type": "get_props_response", "rendererId": "r", "requestId": "p1",
            "payload": {"rowData": 4.5}}
    assert not protocol.parse_message(base).path_resolved
    assert protocol.parse_message({**base, "pathResolved": True}).path_resolved
    assert not protocol.parse_message({**base, "pathResolved": "yes"}).path_resolved


def test_the_retrigger_key_tells_pattern_instances_apart() -> None:
    def payload(index: int | None, output: str = "out.children") -> dict[str, Any]:
        out_id: Any = "out" if index is None else {"type": "row", "index": index}
        return {"output": output, "outputs": {"id": out_id, "property": "children"},
                "inputs": [{"id": "b", "property": "n_clicks", "value": 1}]}

    assert protocol.retrigger_key(payload(None)) == protocol.retrigger_key(payload(None))
    assert protocol.retrigger_key(payload(1)) != protocol.retrigger_key(payload(2))
    reordered = {"output": "out.children",
                 "outputs": {"id": {"index": 1, "type": "row"}, "property": "children"}}
    assert protocol.retrigger_key(reordered) == protocol.retrigger_key(payload(1))
    no_output = {"output": "abc", "outputs": [], "inputs": [{"id": "x", "property": "v"}]}
    other = {"output": "abc", "outputs": [], "inputs": [{"id": "y", "property": "v"}]}
    assert protocol.retrigger_key(no_output) != protocol.retrigger_key(other)


def test_event_frames() -> None:
    payload = protocol.event_payload("tick", {"n": 1})
    frame = json.loads(protocol.event_frame_from_payload("r1", payload))
    assert frame == {"type": "event", "rendererId": "r1",
                     "payload": {"name": "tick", "data": {"n": 1}}}
    assert json.loads(protocol.events_lost_frame("r1", 7)) == {
        "type": "events_lost", "rendererId": "r1", "payload": {"count": 7}}
    with pytest.raises(TypeError):
        protocol.check_event_name("")
    with pytest.raises(ValueError):
        protocol.check_event_name("x" * 300)
