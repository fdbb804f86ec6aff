"""quartdash.wire.outbox: order, coalescing, and the bounds in frames and bytes."""

from __future__ import annotations

import pytest

from quartdash.wire.outbox import Outbox, OutboxOverflow

KEY = ("r1", "out", "children")


def test_frames_leave_in_order() -> None:
    box = Outbox(max_pending=10)
    box.push(b"a")
    box.push_prop(KEY, b"v1", is_patch=False)
    box.push(b"b")
    assert box.drain() == [b"a", b"v1", b"b"]
    assert len(box) == 0 and box.bytes == 0


def test_a_newer_value_replaces_the_waiting_one_and_takes_its_place() -> None:
    box = Outbox(max_pending=10)
    box.push_prop(KEY, b"v1", is_patch=False)
    box.push(b"response")
    box.push_prop(KEY, b"v2", is_patch=False)
    assert box.drain() == [b"response", b"v2"]


def test_patches_wait_in_order_and_a_full_value_drops_them() -> None:
    box = Outbox(max_pending=10)
    box.push_prop(KEY, b"p1", is_patch=True)
    box.push_prop(KEY, b"p2", is_patch=True)
    assert box.drain() == [b"p1", b"p2"]
    box.push_prop(KEY, b"p3", is_patch=True)
    box.push_prop(KEY, b"full", is_patch=False)
    assert box.drain() == [b"full"]


def test_other_keys_coalesce_apart() -> None:
    box = Outbox(max_pending=10)
    box.push_prop(KEY, b"a1", is_patch=False)
    box.push_prop(("r2", "out", "children"), b"b1", is_patch=False)
    box.push_prop(KEY, b"a2", is_patch=False)
    assert box.drain() == [b"b1", b"a2"]


def test_the_frame_count_is_bounded() -> None:
    box = Outbox(max_pending=2)
    box.push(b"1")
    box.push(b"2")
    with pytest.raises(OutboxOverflow, match="limit 2"):
        box.push(b"3")


def test_the_bytes_are_bounded_before_a_frame_is_kept() -> None:
    box = Outbox(max_pending=100, max_bytes=10)
    box.push(b"12345")
    box.push_prop(KEY, b"abc", is_patch=False)
    assert box.bytes == 8
    box.push_prop(KEY, b"abcde", is_patch=False)  # replaces: 5 + 5 fits
    assert box.bytes == 10
    with pytest.raises(OutboxOverflow, match="bytes"):
        box.push(b"x")
    assert box.bytes == 10  # the refused frame was not kept


def test_a_closed_outbox_keeps_nothing() -> None:
    box = Outbox(max_pending=10)
    box.push(b"a")
    box.close()
    box.push(b"b")
    assert box.closed and len(box) == 0 and box.bytes == 0


async def test_wait_returns_once_a_frame_is_ready() -> None:
    box = Outbox(max_pending=10)
    box.push(b"a")
    await box.wait()
    assert box.drain() == [b"a"]


def test_drain_entries_tells_control_frames_and_patches_apart() -> None:
    box = Outbox(max_pending=10)
    box.push(b"response")
    box.push_control(b"ack")
    box.push_prop(KEY, b"patch", is_patch=True)
    box.push_prop(("r", "c", "other"), b"value", is_patch=False)
    box.push_control(b"heartbeat_ack")
    assert box.drain_entries() == [
        (b"response", None, False, False),
        (b"ack", None, False, True),
        (b"patch", KEY, True, False),
        (b"value", ("r", "c", "other"), False, False),
        (b"heartbeat_ack", None, False, True),
    ]
    assert len(box) == 0 and box.bytes == 0


def test_on_ready_is_called_per_frame_and_on_close() -> None:
    calls: list[int] = []
    box = Outbox(max_pending=10, on_ready=lambda: calls.append(len(box)))
    box.push(b"a")
    box.push_prop(KEY, b"b", is_patch=False)
    box.push_prop(KEY, b"c", is_patch=False)  # replaces b
    assert calls == [1, 2, 2]
    box.close()
    assert calls == [1, 2, 2, 0]
