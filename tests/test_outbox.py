"""quartdash.wire.outbox: order, coalescing, and the bounds in frames and bytes."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from quartdash.wire import protocol
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


def test_a_superseded_owner_takes_back_what_waits() -> None:
    box = Outbox(max_pending=10)
    old, new = object(), object()
    box.push_prop(KEY, b"old-value", is_patch=False, owner=old)
    box.push_prop(("r1", "log", "children"), b"old-patch", is_patch=True, owner=old)
    box.push(b"other")
    box.push_event(b"old-event", 1000, owner=old)
    box.push_prop(("r1", "log", "children"), b"new-patch", is_patch=True, owner=new)
    assert box.discard_owner(old) == 3
    assert box.drain() == [b"other", b"new-patch"]
    assert box.bytes == 0 and box.event_bytes == 0


def test_a_newer_value_from_another_owner_is_not_taken_back() -> None:
    box = Outbox(max_pending=10)
    old, new = object(), object()
    box.push_prop(KEY, b"old", is_patch=False, owner=old)
    box.push_prop(KEY, b"new", is_patch=False, owner=new)
    assert box.discard_owner(old) == 0
    assert box.drain() == [b"new"]


async def test_taking_everything_back_does_not_wake_the_sender() -> None:
    box = Outbox(max_pending=10)
    with contextlib.suppress(TimeoutError):  # wait() makes its Event on first use
        await asyncio.wait_for(box.wait(), 0.01)
    owner = object()
    box.push(b"only", owner=owner)
    box.discard_owner(owner)
    assert box._ready is not None and not box._ready.is_set() and box.drain() == []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(box.wait(), 0.01)


def test_events_wait_within_their_own_budget() -> None:
    box = Outbox(max_pending=100, max_bytes=1000)
    assert box.push_event(b"e" * 40, 100)
    assert box.push_event(b"e" * 40, 100)
    assert not box.push_event(b"e" * 40, 100)  # 120 > 100: refused, nothing kept
    assert len(box) == 2 and box.event_bytes == 80
    box.drain()
    assert box.event_bytes == 0 and box.push_event(b"e" * 40, 100)


def test_events_leave_room_for_what_must_not_be_refused() -> None:
    box = Outbox(max_pending=8, max_bytes=10_000)
    accepted = sum(box.push_event(b"e", 10_000) for _ in range(10))
    assert accepted == 6  # three quarters of the frames: the rest is for responses
    box.push(b"response")
    box.push(b"another")
    assert len(box) == 8
    byte_box = Outbox(max_pending=100, max_bytes=100)
    assert byte_box.push_event(b"e" * 70, 10_000)
    assert not byte_box.push_event(b"e" * 10, 10_000)  # 80 > 75 bytes


def test_a_closed_outbox_refuses_events() -> None:
    box = Outbox(max_pending=10)
    box.close()
    assert not box.push_event(b"e", 100)


def test_a_waiting_frame_holds_about_its_own_length() -> None:
    # The byte budgets count len(frame); orjson's own bytes would hold 4 KB
    # and more for a 200-byte frame (ijl/orjson#483).
    import tracemalloc

    from dash import Patch

    patch = Patch()
    patch.append({"t": 1.0, "seq": 2})
    protocol.set_props_frame("r1", "live", {"children": patch})  # first-call allocations
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        frames = [protocol.set_props_frame("r1", "live", {"children": patch})
                  for _ in range(500)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "lineno")) / len(frames)
    assert held < 2 * len(frames[0]) + 64, (held, len(frames[0]))


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


def test_an_owners_frames_keep_control_frames_and_events_apart() -> None:
    """discard_owner() with control frames on negative keys and events in their
    lazily made set: only the owner's frames go, the event budget follows."""
    box = Outbox(max_pending=10)
    run = object()
    assert box._events is None  # no set held until an event waits
    box.push_control(b"ack")
    assert box.push_event(b"event", 100, owner=run)
    box.push_prop(KEY, b"patch", is_patch=True, owner=run)
    box.push(b"response")
    assert box.event_bytes == 5
    assert box.discard_owner(run) == 2
    assert box.event_bytes == 0 and box.bytes == len(b"ack") + len(b"response")
    assert box.drain_entries() == [(b"ack", None, False, True),
                                   (b"response", None, False, False)]
    assert box._events is None and box.event_bytes == 0


def test_a_backlog_goes_out_in_frames_of_a_mebibyte_at_most() -> None:
    """A slow client's backlog is never one frame of everything (each copy on
    the way to the socket would be the whole backlog); order is kept."""
    from quartdash.wire.protocol import MAX_BATCH_BYTES, batches

    messages = [orjson.dumps({"n": n, "pad": "x" * 16_000}) for n in range(200)]
    frames = list(batches(messages))
    assert len(frames) == 4  # 200 x ~16 KB in 1 MiB pieces
    assert all(len(frame) <= MAX_BATCH_BYTES for frame in frames)
    decoded = [message for frame in frames for message in orjson.loads(frame)]
    assert [m["n"] for m in decoded] == list(range(200))
    # One message over the limit goes alone; one message is no array.
    huge = orjson.dumps({"big": "y" * (MAX_BATCH_BYTES + 10)})
    assert list(batches([messages[0], huge, messages[1]])) == [messages[0], huge, messages[1]]
    assert list(batches([])) == []
