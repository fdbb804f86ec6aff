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
    __slots__ = ("_entries", "_max_bytes", "_max_pending", "_on_ready", "_patch_key",
                 "_patches", "_ready", "_seq", "bytes", "closed")

    def __init__(self, max_pending: int, max_bytes: int = 16 * 1024 * 1024,
                 on_ready: Callable[[], None] | None = None) -> None:
        # key -> frame; dict order is send order. Keys are either a
        # (renderer, component, prop) tuple (coalescable) or an int (not):
        # >= 0 for frames about the page, < 0 (~seq) for frames about the
        # connection itself (control), so no set of them is needed.
        self._entries: dict[Hashable, bytes] = {}
        self._patches: dict[tuple[str, str, str], list[int]] = {}
        self._patch_key: dict[int, tuple[str, str, str]] = {}  # patch seq -> its key
        self._seq = itertools.count()
        self._max_pending = max_pending
        self._max_bytes = max_bytes
        self.bytes = 0  # bytes of the frames waiting
        self._on_ready = on_ready
        self._ready: asyncio.Event | None = None  # created by the first wait()
        self.closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, frame: bytes) -> None:
        """Queue a frame that is never coalesced (responses, requests, errors)."""
        self._put(next(self._seq), frame)

    def push_control(self, frame: bytes) -> None:
        """Queue a frame about the connection itself (heartbeat acks, acks): it
        takes no sequence number and is never replayed."""
        self._put(~next(self._seq), frame)

    def push_prop(self, key: tuple[str, str, str], frame: bytes, *, is_patch: bool) -> None:
        """Queue a ``set_props`` frame for one (renderer, component, property)."""
        if is_patch:
            seq = next(self._seq)
            self._put(seq, frame)
            self._patches.setdefault(key, []).append(seq)
            self._patch_key[seq] = key
            return
        for seq in self._patches.pop(key, ()):
            self._drop(seq)
        # Delete first so the new value moves to the end of the send order.
        self._drop(key)
        self._put(key, frame)

    def _drop(self, key: Hashable) -> None:
        frame = self._entries.pop(key, None)
        if frame is not None:
            self.bytes -= len(frame)
            if isinstance(key, int):
                self._patch_key.pop(key, None)

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
        if self._ready is not None:
            self._ready.clear()
        self.bytes = 0

    def close(self) -> None:
        """Refuse further frames and wake the sender so it can stop."""
        self.closed = True
        self._clear()
        if self._ready is not None:
            self._ready.set()
        if self._on_ready is not None:
            self._on_ready()
