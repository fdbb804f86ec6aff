"""A TCP proxy on 127.0.0.1 that fails the way networks do, for fault tests.

* :meth:`FaultProxy.cut` resets every open connection at once (RST, no close
  frame): a wifi switch, a load balancer dropping its connections;
* :meth:`FaultProxy.stall` stops forwarding for a while without closing
  anything (new connections are accepted but wait too): a stuck proxy, a
  laptop lid;
* :meth:`FaultProxy.retarget` points new connections at another port (a
  restarted server).

It runs on the test's event loop; every wait is bounded by the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, backlog: int = 100) -> FaultProxy:
        """Listen on a free port; ``backlog``: connections the kernel queues
        before we accept them (many clients reconnecting at once need more)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def retarget(self, port: int) -> None:
        self.target_port = port

    def cut(self) -> int:
        """Reset every open connection; how many there were."""
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            _reset(writer)
        self.cuts += 1
        return len(writers) // 2

    async def stall(self, seconds: float) -> None:
        """Forward nothing for ``seconds``; connections stay open."""
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._flowing.set()

    async def cut_every(self, interval: float, duration: float) -> int:
        """Cut every ``interval`` seconds for ``duration``; how many cuts."""
        cuts = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + duration
        while loop.time() + interval <= end:
            await asyncio.sleep(interval)
            self.cut()
            cuts += 1
        return cuts

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self._flowing.wait()  # a stalled proxy accepts, then does nothing
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), timeout=5)
        except (OSError, TimeoutError):
            _reset(writer)
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass  # a cut, or the peer went away
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
