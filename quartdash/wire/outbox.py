"""A connection's outbound buffer: ordered, bounded, coalescing.

Frames are encoded once, when they are produced. While a ``set_props`` frame
for a (renderer, component, property) waits to be sent, a newer full value
for the same key replaces it (and takes the newer position, so "latest wins"
also holds against other keys). ``Patch`` values are never merged or
dropped by a later patch: they wait in order; a full value drops the unsent
patches before it, since it overwrites what they would have changed.

So a client that reads slower than its callbacks push costs the server one
frame per distinct key, not one per push; only patches and one-off frames
(responses, get_props requests) count towards ``max_pending``. What waits is
also bounded in bytes (``max_bytes``): a frame that would exceed either
limit raises :class:`OutboxOverflow` before it is kept.

Two more things a frame may carry:

* an **owner** (the callback run that produced it): when a run is
  superseded by a newer run of the same callback (docs/websocket-callbacks.md,
  re-triggering), :meth:`Outbox.discard_owner` takes back what it queued and
  that has not been sent yet;
* being an **event** (``ctx.websocket.send_event``): events wait like any
  frame but within their own byte budget, and one that does not fit is
  refused (:meth:`Outbox.push_event` returns False) instead of overflowing
  the connection: the session then tells the tab how many it lost.

Its owner learns that frames wait through ``on_ready`` (called on every
frame kept, and on close) rather than a waiting task: an idle connection
then holds no task and no Event for its outbound side.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Hashable


class OutboxOverflow(Exception):
    """More frames wait to be sent than the connection's limit allows."""


class Outbox:
    __slots__ = ("_entries", "_events", "_max_bytes", "_max_pending", "_on_ready", "_owners",
                 "_patch_key", "_patches", "_ready", "_seq", "bytes", "closed", "event_bytes")

    def __init__(self, max_pending: int, max_bytes: int = 16 * 1024 * 1024,
                 on_ready: Callable[[], None] | None = None) -> None:
        # key -> frame; dict order is send order. Keys are either a
        # (renderer, component, prop) tuple (coalescable) or an int (not):
        # >= 0 for frames about the page, < 0 (~seq) for frames about the
        # connection itself (control), so no set of them is needed.
        self._entries: dict[Hashable, bytes] = {}
        self._patches: dict[tuple[str, str, str], list[int]] = {}
        self._patch_key: dict[int, tuple[str, str, str]] = {}  # patch seq -> its key
        self._owners: dict[Hashable, object] = {}  # key -> the run that queued it
        # Event frames waiting; made by the first event (an empty set is 216
        # bytes, and most connections never send an event).
        self._events: set[int] | None = None
        self.event_bytes = 0  # bytes of the event frames waiting
        self._seq = itertools.count()
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self.bytes = 0  # bytes of the frames waiting
        self._on_ready = on_ready
        self._ready: asyncio.Event | None = None  # created by the first wait()
        self.closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, frame: bytes, *, owner: object = None) -> None:
        """Queue a frame that is never coalesced (responses, requests, errors)."""
        seq = next(self._seq)
        self._put(seq, frame)
        if owner is not None:
            self._owners[seq] = owner

    def push_event(self, frame: bytes, max_event_bytes: int, *, owner: object = None) -> bool:
        """Queue an event frame if it fits; False (nothing kept) when it does not.

        It fits within ``max_event_bytes`` of waiting events, and while it
        leaves room for the frames that must not be refused: at most three
        quarters of ``max_pending`` frames and of ``max_bytes`` may wait
        once it is in.
        """
        size = len(frame)
        if (self.closed or self.event_bytes + size > max_event_bytes
                or len(self._entries) + 1 > self._max_pending * 3 // 4
                or self.bytes + size > self._max_bytes * 3 // 4):
            return False
        seq = next(self._seq)
        self._put(seq, frame)
        if self._events is None:
            self._events = set()
        self._events.add(seq)
        self.event_bytes += size
        if owner is not None:
            self._owners[seq] = owner
        return True

    def push_control(self, frame: bytes) -> None:
        """Queue a frame about the connection itself (heartbeat acks, acks): it
        takes no sequence number and is never replayed."""
        self._put(~next(self._seq), frame)

    def push_prop(self, key: tuple[str, str, str], frame: bytes, *, is_patch: bool,
                  owner: object = None) -> None:
        """Queue a ``set_props`` frame for one (renderer, component, property)."""
        if is_patch:
            seq = next(self._seq)
            self._put(seq, frame)
            self._patches.setdefault(key, []).append(seq)
            self._patch_key[seq] = key
            if owner is not None:
                self._owners[seq] = owner
            return
        for seq in self._patches.pop(key, ()):
            self._drop(seq)
        # Delete first so the new value moves to the end of the send order.
        self._drop(key)
        self._put(key, frame)
        if owner is not None:
            self._owners[key] = owner

    def discard_owner(self, owner: object) -> int:
        """Drop every waiting frame ``owner`` queued (a superseded run's pushes
        and events); returns how many."""
        keys = [key for key, who in self._owners.items() if who is owner]
        for key in keys:
            patch_key = self._patch_key.get(key) if isinstance(key, int) else None
            if patch_key is not None:
                waiting = self._patches.get(patch_key)
                if waiting is not None and key in waiting:
                    waiting.remove(key)
                    if not waiting:
                        del self._patches[patch_key]
            self._drop(key)
        if not self._entries and not self.closed and self._ready is not None:
            self._ready.clear()  # a wait() must not return for nothing
        return len(keys)

    def _drop(self, key: Hashable) -> None:
        frame = self._entries.pop(key, None)
        self._owners.pop(key, None)
        if frame is not None:
            self.bytes -= len(frame)
            if isinstance(key, int):
                self._patch_key.pop(key, None)
                if self._events is not None and key in self._events:
                    self._events.discard(key)
                    self.event_bytes -= len(frame)

    def _put(self, key: Hashable, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._entries) >= self._max_pending:
            raise OutboxOverflow(
                f"{len(self._entries)} frames wait for a slow client (limit {self._max_pending})"
            )
        if self.bytes + len(frame) > self._max_bytes:
            raise OutboxOverflow(
                f"{self.bytes + len(frame)} bytes would wait for a slow client "
                f"(limit {self._max_bytes})"
            )
        self._entries[key] = frame
        self.bytes += len(frame)
        if self._ready is not None:
            self._ready.set()
        if self._on_ready is not None:
            self._on_ready()

    async def wait(self) -> None:
        """Return once at least one frame is waiting (or the outbox closed)."""
        if self._entries or self.closed:
            return
        if self._ready is None:
            self._ready = asyncio.Event()
        await self._ready.wait()

    def drain(self) -> list[bytes]:
        """Take every waiting frame, in send order."""
        frames = list(self._entries.values())
        self._clear()
        return frames

    def drain_entries(self) -> list[tuple[bytes, Hashable | None, bool, bool]]:
        """Take every waiting frame, in send order, as ``(frame, key, is_patch,
        control)``: ``key`` is the (renderer, component, property) of a
        ``set_props`` (None for other frames), for the replay log."""
        patch_key = self._patch_key
        entries: list[tuple[bytes, Hashable | None, bool, bool]] = []
        for key, frame in self._entries.items():
            if isinstance(key, tuple):
                entries.append((frame, key, False, False))
            elif key in patch_key:
                entries.append((frame, patch_key[key], True, False))
            else:
                entries.append((frame, None, False, isinstance(key, int) and key < 0))
        self._clear()
        return entries

    def _clear(self) -> None:
        self._entries.clear()
        self._patches.clear()
        self._patch_key.clear()
        self._owners.clear()
        self._events = None
        if self._ready is not None:
            self._ready.clear()
        self.bytes = 0
        self.event_bytes = 0

    def close(self) -> None:
        """Refuse further frames and wake the sender so it can stop."""
        self.closed = True
        self._clear()
        if self._ready is not None:
            self._ready.set()
        if self._on_ready is not None:
            self._on_ready()
