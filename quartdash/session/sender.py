"""The outbound side of a session: its outbox and the one task draining it.

Frames are encoded once, when produced, and queued in the
:class:`~quartdash.wire.outbox.Outbox`; the sender sends whatever is ready
as one frame (a JSON array when there are several), so a burst of pushes
costs one send.

On a resumable session each message also gets the next sequence number and
goes into the :class:`~quartdash.wire.replay.ReplayLog` until the client
acks it; the sender pauses while the session waits for its client to come
back, and :meth:`Sender.replay` sends what the client missed first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import WebSocketConfig
from ..types import Transport
from ..wire import protocol
from ..wire.outbox import Outbox
from ..wire.replay import ReplayLog
from ..wire.rules import SendStall

__all__ = ["Sender"]

# Messages per frame when replaying a backlog: one frame of everything could
# be as large as the whole replay budget.
REPLAY_BATCH = 256


class Sender:
    """Drains one session's outbox into its transport.

    A send blocks only when the client reads slower than we write (TCP
    back-pressure). One lazily armed timer watches the sends instead of a
    timeout per send: most sends complete at once, so it rarely exists. A
    client counts as stuck only when a send has been blocked for
    ``send_timeout`` *and* it sent nothing meanwhile (:class:`SendStall`):
    a slow reader that is still alive keeps its connection, its pushes
    coalesced to the latest values until it catches up.
    """

    __slots__ = ("_loop", "_on_stall", "_stall", "_task", "_watchdog", "bytes_sent",
                 "frames_sent", "log", "outbox", "seq")

    def __init__(self, config: WebSocketConfig, loop: asyncio.AbstractEventLoop,
                 on_stall: Callable[[str], None]) -> None:
        self.outbox = Outbox(config.max_pending, config.max_pending_bytes)
        self.frames_sent = 0
        self.bytes_sent = 0  # UTF-8 bytes of the frames sent
        self.seq = 0  # the last sequence number given (resumable sessions)
        self.log: ReplayLog | None = None  # set when the session becomes resumable
        self._loop = loop
        self._stall = SendStall(config.send_timeout, loop.time())
        self._on_stall = on_stall
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def heard_from_client(self, now: float) -> None:
        self._stall.heard_from_client(now)

    def start(self, transport: Transport) -> None:
        self._task = asyncio.create_task(self._run(transport), name="quartdash-sender")

    async def pause(self) -> None:
        """End the task but keep what waits: the session may get a new transport."""
        self._disarm()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=1)
            self._task = None
        self._stall.send_finished()

    async def stop(self) -> None:
        """Close the outbox and end the task. First thing at shutdown: a send
        blocked on a client that stopped reading holds the socket, and the
        close frame must get through."""
        self.outbox.close()
        await self.pause()

    async def replay(self, transport: Transport, after: int) -> bool:
        """Send, in order, the logged messages after ``after`` (what the client
        missed); False when some of them were lost."""
        assert self.log is not None
        frames = self.log.since(after)
        if frames is None:
            return False
        for start in range(0, len(frames), REPLAY_BATCH):
            data = protocol.batch(frames[start:start + REPLAY_BATCH])
            await transport.send(data.decode())
            self.frames_sent += 1
            self.bytes_sent += len(data)
        return True

    async def _run(self, transport: Transport) -> None:
        outbox, send, loop = self.outbox, transport.send, self._loop
        while True:
            await outbox.wait()
            if outbox.closed:
                return
            frames = outbox.drain() if self.log is None else self._number(outbox)
            data = protocol.batch(frames)
            self._stall.send_started(loop.time())
            if self._watchdog is None:
                self._arm(self._stall.timeout)
            await send(data.decode())
            self._stall.send_finished()
            self.frames_sent += 1
            self.bytes_sent += len(data)

    def _number(self, outbox: Outbox) -> list[bytes]:
        """Give each message its sequence number and log it for replay."""
        log = self.log
        assert log is not None
        frames = []
        for frame, key, is_patch, control in outbox.drain_entries():
            if not control:
                self.seq += 1
                frame = protocol.with_seq(frame, self.seq)
                log.append(self.seq, frame, key, is_patch)
            frames.append(frame)
        return frames

    def _arm(self, delay: float) -> None:
        self._watchdog = self._loop.call_later(delay, self._check)

    def _disarm(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _check(self) -> None:
        self._watchdog = None
        remaining = self._stall.remaining(self._loop.time())
        if remaining is None or self.outbox.closed:
            return
        if remaining <= 0:
            self._on_stall(f"a send blocked for more than {self._stall.timeout} s on a "
                           "silent client")
        else:
            self._arm(remaining)
