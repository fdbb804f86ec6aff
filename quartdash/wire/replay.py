"""What a resumable session sent and the client has not acknowledged yet.

Every message the server sends on a resumable session carries a sequence
number; the log keeps each one until the client acks it, so that after a
dropped connection the messages the client missed can be sent again, in
order, exactly once (the client drops numbers it has already applied).

Like the outbox, the log coalesces: a newer full value of a (tab,
component, property) makes the older value and patches of that key moot,
so they leave the log (the client gets the newer value anyway). Patches are
never dropped otherwise. What does not fit ``max_bytes`` is dropped from the
oldest end and remembered as lost: a resume from before it is impossible,
and the client is told so (loss is always signalled).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["ReplayLog"]


class ReplayLog:
    __slots__ = ("_by_key", "_entries", "bytes", "lost_through", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        # seq -> (frame, coalescing key or None); dict order is seq order.
        self._entries: dict[int, tuple[bytes, Hashable | None]] = {}
        self._by_key: dict[Hashable, list[int]] = {}
        self.bytes = 0
        self.lost_through = 0
        """The highest sequence number dropped for lack of room (0: none)."""

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, seq: int, frame: bytes, key: Hashable | None = None,
               is_patch: bool = False) -> None:
        """Log message ``seq`` (frames must come in increasing ``seq`` order)."""
        if key is not None:
            if not is_patch:
                for older in self._by_key.pop(key, ()):  # superseded, not lost
                    self._drop(older)
            self._by_key.setdefault(key, []).append(seq)
        self._entries[seq] = (frame, key)
        self.bytes += len(frame)
        while self.bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.lost_through = max(self.lost_through, oldest)

    def ack(self, seq: int) -> None:
        """The client applied everything up to ``seq``: forget it."""
        while self._entries:
            oldest = next(iter(self._entries))
            if oldest > seq:
                return
            self._drop(oldest)

    def since(self, seq: int) -> list[bytes] | None:
        """The frames after ``seq``, in order; None when some were lost."""
        if seq < self.lost_through:
            return None
        return [frame for number, (frame, _) in self._entries.items() if number > seq]

    def _drop(self, seq: int) -> None:
        entry = self._entries.pop(seq, None)
        if entry is None:
            return
        frame, key = entry
        self.bytes -= len(frame)
        if key is not None:
            numbers = self._by_key.get(key)
            if numbers is not None:
                numbers.remove(seq)
                if not numbers:
                    del self._by_key[key]
