"""The session's Quart transport: direct ASGI sends, with a fallback."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from quart import Quart, websocket

from quartdash.hosting.websocket_route import (
    BoundedWebsocketConnection,
    QuartTransport,
    ReceiveQueue,
    bound_receive_queue,
)


async def test_quart_websocket_sends_straight_to_asgi() -> None:
    app = Quart(__name__)
    seen: dict[str, Any] = {}

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        transport = QuartTransport(websocket._get_current_object())
        seen["direct"] = transport._asgi_send is not None
        await transport.send(await transport.receive())

    async with app.test_client().websocket("/ws") as client:
        await client.send("ping")
        assert await client.receive() == "ping"
    assert seen["direct"], "Quart's Websocket no longer exposes the ASGI send: fallback in use"


async def test_falls_back_to_the_websocket_api() -> None:
    class FakeWebsocket:
        sent: list[str] = []

        async def send(self, text: str) -> None:
            self.sent.append(text)

    fake = FakeWebsocket()
    transport = QuartTransport(fake)
    assert transport._asgi_send is None
    await transport.send("hello")
    assert fake.sent == ["hello"]


# -- the bounded receive queue: asyncio.Queue's put/get, lighter ------------------------


async def test_receive_queue_is_fifo_and_bounded() -> None:
    queue = ReceiveQueue(2)
    await queue.put("a")
    await queue.put("b")
    assert queue.full() and queue.qsize() == 2
    third = asyncio.ensure_future(queue.put("c"))
    await asyncio.sleep(0.01)
    assert not third.done()  # waits: the queue holds two
    assert await queue.get() == "a"
    await asyncio.wait_for(third, 1)
    assert [await queue.get(), await queue.get()] == ["b", "c"]
    assert queue.empty()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_receive_queue_getters_wait_in_order() -> None:
    queue = ReceiveQueue(4)
    got: list[tuple[int, str]] = []

    async def getter(n: int) -> None:
        got.append((n, await queue.get()))

    tasks = [asyncio.ensure_future(getter(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    for item in "xyz":
        queue.put_nowait(item)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert got == [(0, "x"), (1, "y"), (2, "z")]


async def test_receive_queue_cancellation_loses_nothing() -> None:
    """A getter cancelled after it was woken passes the item on; a cancelled
    put adds nothing (what accept()'s first-message timeout relies on)."""
    queue = ReceiveQueue(1)
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.01)
    queue.put_nowait("item")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "item"
    assert first.cancelled()

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.01):
            await queue.get()  # a timed-out wait takes nothing
    queue.put_nowait("kept")
    blocked = asyncio.ensure_future(queue.put("dropped"))
    await asyncio.sleep(0.01)
    blocked.cancel()
    await asyncio.gather(blocked, return_exceptions=True)
    assert queue.get_nowait() == "kept" and queue.empty()


async def test_quart_connections_get_the_light_queue() -> None:
    app = Quart(__name__)
    bound_receive_queue(app)
    seen: dict[str, Any] = {}

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        seen["queue"] = type(websocket._get_current_object()._receive.__self__)
        for _ in range(3):
            await websocket.send(await websocket.receive())

    async with app.test_client().websocket("/ws") as client:
        for text in ("1", "2", "3"):
            await client.send(text)
        seen["echo"] = [await client.receive() for _ in range(3)]
    assert seen["echo"] == ["1", "2", "3"]
    assert app.asgi_websocket_class is BoundedWebsocketConnection
    assert seen["queue"] is ReceiveQueue
