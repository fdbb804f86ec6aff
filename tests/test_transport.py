"""The session's Quart transport: direct ASGI sends, with a fallback."""

from __future__ import annotations

from typing import Any

from quart import Quart, websocket

from quartdash.hosting.websocket_route import QuartTransport


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
