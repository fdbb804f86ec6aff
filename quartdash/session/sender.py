"""The outbound side of a session: its outbox and the one task draining it.

Frames are encoded once, when produced, and queued in the
:class:`~quartdash.wire.outbox.Outbox`; the sender sends whatever is ready
as one frame (a JSON array when there are several), so a burst of pushes
costs one send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import WebSocketConfig
from ..types import Transport
from ..wire import protocol
from ..wire.outbox import Outbox
from ..wire.rules import SendStall

__all__ = ["Sender"]


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

    __slots__ = ("_loop", "_on_stall", "_stall", "_task", "_watchdog", "frames_sent", "outbox")

    def __init__(self, config: WebSocketConfig, loop: asyncio.AbstractEventLoop,
                 on_stall: Callable[[str], None]) -> None:
        self.outbox = Outbox(config.max_pending, config.max_pending_bytes)
        self.frames_sent = 0
        self._loop = loop
        self._stall = SendStall(config.send_timeout, loop.time())
        self._on_stall = on_stall
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def heard_from_client(self, now: float) -> None:
        self._stall.heard_from_client(now)

    def start(self, transport: Transport) -> None:
        self._task = asyncio.create_task(self._run(transport), name="quartdash-sender")

    async def stop(self) -> None:
        """Close the outbox and end the task. First thing at shutdown: a send
        blocked on a client that stopped reading holds the socket, and the
        close frame must get through."""
        self.outbox.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=1)

    async def _run(self, transport: Transport) -> None:
        outbox, send, loop = self.outbox, transport.send, self._loop
        while True:
            await outbox.wait()
            if outbox.closed:
                return
            text = protocol.batch(outbox.drain()).decode()
            self._stall.send_started(loop.time())
            if self._watchdog is None:
                self._arm(self._stall.timeout)
            await send(text)
            self._stall.send_finished()
            self.frames_sent += 1

    def _arm(self, delay: float) -> None:
        self._watchdog = self._loop.call_later(delay, self._check)

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
