"""The outbound side of a session: its outbox and the task draining it.

Frames are encoded once, when produced, and queued in the
:class:`~quartdash.wire.outbox.Outbox`; the sender sends whatever is ready
as one frame (a JSON array when there are several), so a burst of pushes
costs one send (a frame per MiB for a backlog: ``protocol.MAX_BATCH_BYTES``).

The sending task exists only while there is something to send: the outbox
starts it when a frame arrives, and it ends after :data:`SENDER_IDLE`
seconds without frames (at once after a lone frame, such as a heartbeat's
ack, that follows a quiet stretch). An idle session (most of a large server's) thus
holds no task, no coroutine stack and no Event for its outbound side; a
session pushing steadily keeps one task.

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

__all__ = ["SENDER_IDLE", "Sender", "wait_ended"]

# Seconds without frames after which the sending task ends (the next frame
# starts a new one). Longer than the gap between a steady pusher's frames,
# so such a session keeps its task; far shorter than the heartbeat interval,
# so an idle session holds none most of the time.
SENDER_IDLE = 2.0


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

    __slots__ = ("_ended_at", "_idle_since", "_idle_timer", "_loop", "_on_stall", "_stall", "_task",
                 "_transport", "_waiter", "_watchdog", "bytes_sent", "frames_sent", "log",
                 "outbox", "seq")

    def __init__(self, config: WebSocketConfig, loop: asyncio.AbstractEventLoop,
                 on_stall: Callable[[str], None]) -> None:
        self.outbox = Outbox(config.max_pending, config.max_pending_bytes, self._ready)
        self.frames_sent = 0
        self.bytes_sent = 0  # UTF-8 bytes of the frames sent
        self.seq = 0  # the last sequence number given (resumable sessions)
        self.log: ReplayLog | None = None  # set when the session becomes resumable
        self._loop = loop
        self._stall = SendStall(config.send_timeout, loop.time())
        self._on_stall = on_stall
        self._transport: Transport | None = None  # None while paused (or not started)
        self._task: asyncio.Task[None] | None = None  # only while there is work
        self._waiter: asyncio.Future[bool] | None = None  # the task waiting for frames
        self._idle_since = 0.0
        self._ended_at = float("-inf")  # when the last task ended
        self._idle_timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def heard_from_client(self, now: float) -> None:
        self._stall.heard_from_client(now)

    def start(self, transport: Transport) -> None:
        """Send to ``transport`` from now on: what waits at once, the rest as it comes."""
        self._transport = transport
        if len(self.outbox):
            self._spawn(transport)

    def pause(self) -> asyncio.Task[None] | None:
        """Stop sending now but keep what waits: the session may get a new
        transport at once (a start() makes its own task). Returns the task
        that was sending, cancelled, for :func:`wait_ended`."""
        self._transport = None
        self._disarm()
        self._end_idle_timer()
        self._stall.send_finished()  # nothing of ours is blocked on the new transport
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def stop(self) -> None:
        """Close the outbox and end the task. First thing at shutdown: a send
        blocked on a client that stopped reading holds the socket, and the
        close frame must get through."""
        self.outbox.close()
        await wait_ended(self.pause())

    async def replay(self, transport: Transport, after: int) -> bool:
        """Send, in order, the logged messages after ``after`` (what the client
        missed); False when some of them were lost."""
        assert self.log is not None
        frames = self.log.since(after)
        if frames is None:
            return False
        for data in protocol.batches(frames):
            await transport.send(data.decode())
            self.frames_sent += 1
            self.bytes_sent += len(data)
        return True

    def _ready(self) -> None:
        """The outbox has a new frame (or closed): wake the task, or start one."""
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(True)
        elif self._task is None and self._transport is not None and not self.outbox.closed:
            self._spawn(self._transport)

    def _spawn(self, transport: Transport) -> None:
        self._task = self._loop.create_task(self._run(transport), name="quartdash-sender")

    async def _run(self, transport: Transport) -> None:
        outbox, send, loop = self.outbox, transport.send, self._loop
        # Linger for more frames only when frames came recently (a pusher): a
        # lone frame after a quiet stretch (a heartbeat's ack) ends its task
        # at once instead of keeping a future and a timer for SENDER_IDLE.
        steady = loop.time() - self._ended_at < SENDER_IDLE
        me = asyncio.current_task()
        try:
            while not outbox.closed:
                if not len(outbox):
                    if steady and (await self._idle() or len(outbox)):
                        continue
                    return  # idle: the next frame starts a new task
                if self._task is not me:
                    # Paused (detached, or taken over): the cancel may not have
                    # reached us (a library on the send path can swallow one),
                    # and what waits now belongs to the next transport's task.
                    return
                frames = outbox.drain() if self.log is None else self._number(outbox)
                for data in protocol.batches(frames):
                    self._stall.send_started(loop.time())
                    if self._watchdog is None:
                        self._arm(self._stall.timeout)
                    await send(data.decode())
                    self._stall.send_finished()
                    self.frames_sent += 1
                    self.bytes_sent += len(data)
        finally:
            # No await between the last look at the outbox and here: a frame
            # queued after it finds no task and starts one.
            if self._task is me:
                self._task = None
                self._ended_at = loop.time()
                self._end_idle_timer()
                self._disarm()  # no send of ours is blocked now: nothing to watch

    async def _idle(self) -> bool:
        """Wait for a frame: True once one came, False after SENDER_IDLE s without.

        One timer per idle stretch, re-armed for the remainder, rather than a
        timeout per wait: a steady pusher waits many times a second.
        """
        loop = self._loop
        self._idle_since = loop.time()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        if self._idle_timer is None:
            self._idle_timer = loop.call_at(self._idle_since + SENDER_IDLE, self._idle_check)
        try:
            return await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def _end_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # busy sending: the task's next wait arms the timer again
        deadline = self._idle_since + SENDER_IDLE
        if deadline > self._loop.time():
            self._idle_timer = self._loop.call_at(deadline, self._idle_check)
        else:
            waiter.set_result(False)

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


async def wait_ended(task: asyncio.Task[None] | None) -> None:
    """Wait (a second at most) for a task :meth:`Sender.pause` cancelled: a
    send stuck on a dead socket may take a moment to give up."""
    if task is not None:
        await asyncio.wait([task], timeout=1)
