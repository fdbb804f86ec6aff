"""Presence in one process (memory:// backend), through DashClient: track,
presence(), presence_events(), and entries ending with their tab, session
or socket. Across worker processes with Redis, and the TTL after a SIGKILL:
tests/test_live_sessions_cluster.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from dash import Input, Output, html

from quartdash import Dash, Identity, broadcast
from quartdash.broadcast.presence import PresenceEvent
from quartdash.testing import DashClient

room = broadcast.Topic("presence-test-room")
USERS = {"a": Identity("alice", role="admin"), "b": Identity("bob")}


def build() -> Dash:
    app = Dash(__name__, websocket_callbacks=True)
    app.layout = html.Div([html.Button(id="page"), html.Div(id="paged"),
                           html.Button(id="untrack"), html.Div(id="untracked"),
                           html.Button(id="big"), html.Div(id="bigged")])

    @app.websocket_connect
    def identify(ws: Any) -> Any:
        return USERS.get(ws.cookies.get("sid", ""))

    @app.callback(persistent=True)
    async def be_here() -> None:
        await room.track({"page": "home"})

    @app.callback(Output("paged", "children"), Input("page", "n_clicks"),
                  prevent_initial_call=True)
    async def go(n: int) -> str:
        await room.track({"page": f"page {n}"})
        return "moved"

    @app.callback(Output("untracked", "children"), Input("untrack", "n_clicks"),
                  prevent_initial_call=True)
    async def away(n: int) -> str:
        await room.untrack()
        return "away"

    @app.callback(Output("bigged", "children"), Input("big", "n_clicks"),
                  prevent_initial_call=True)
    async def big(n: int) -> str:
        try:
            await room.track({"blob": "x" * 10_000})
        except ValueError as error:
            return str(error)
        return "tracked"

    return app


class Events:
    """Every presence event of the room, collected by a background task."""

    def __init__(self) -> None:
        self.seen: list[PresenceEvent] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()

        async def collect() -> None:
            async with room.presence_events() as events:
                ready.set()
                async for event in events:
                    self.seen.append(event)

        self._task = asyncio.ensure_future(collect())
        await asyncio.wait_for(ready.wait(), 5)

    def kinds(self) -> list[tuple[str, str | None, Any]]:
        return [(e.kind, e.entry.identity and e.entry.identity.id, e.entry.meta.get("page"))
                for e in self.seen]

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait([self._task], timeout=5)


@pytest_asyncio.fixture
async def events() -> AsyncIterator[Events]:
    collector = Events()
    await collector.start()
    yield collector
    await collector.stop()


async def until(predicate: Any, what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def present() -> list[tuple[str | None, str]]:
    return [(e.identity and e.identity.id, e.meta.get("page")) for e in await room.presence()]


async def test_tabs_join_update_and_leave(events: Events) -> None:
    app = build()
    async with DashClient(app, headers={"Cookie": "sid=a"}) as alice, \
            DashClient(app, headers={"Cookie": "sid=b"}) as bob:
        a1 = await alice.open_renderer()
        await until(lambda: len(events.seen) == 1, "alice's join")
        a2 = await alice.open_renderer()
        b1 = await bob.open_renderer()
        await until(lambda: len(events.seen) == 3, "three joins")
        assert sorted(await present()) == [("alice", "home"), ("alice", "home"),
                                           ("bob", "home")]
        entries = {e.tab: e for e in await room.presence()}
        assert set(entries) == {a1.id, a2.id, b1.id}
        first = entries[a1.id]
        assert first.identity == Identity("alice", role="admin")
        assert first.app == app.live.app_key and first.key.endswith(f"/{first.session}/{a1.id}")
        assert first.session in {i.id for i in app.live.list_sessions()}
        assert abs(first.joined_at - time.time()) < 10

        # New metadata: an update, the same entry, joined_at kept.
        await a1.call("paged.children", inputs={"page.n_clicks": 2})
        await until(lambda: events.kinds()[-1] == ("update", "alice", "page 2"), "the update")
        moved = {e.tab: e for e in await room.presence()}[a1.id]
        assert moved.meta == {"page": "page 2"} and moved.joined_at == first.joined_at

        # A tab that leaves, untracks, or whose connection closes leaves.
        await a2.leave()
        await until(lambda: events.kinds()[-1][0] == "leave", "a2's leave")
        await b1.call("untracked.children", inputs={"untrack.n_clicks": 1})
        await until(lambda: len(events.seen) == 6, "bob's leave")
        assert await present() == [("alice", "page 2")]
        await alice.disconnect()
        await until(lambda: len(events.seen) == 7, "alice's last leave")
        assert await room.presence() == []
    assert events.kinds() == [
        ("join", "alice", "home"), ("join", "alice", "home"), ("join", "bob", "home"),
        ("update", "alice", "page 2"), ("leave", "alice", "home"), ("leave", "bob", "home"),
        ("leave", "alice", "page 2")]
    assert broadcast.stats()["presence_entries"] == 0


async def test_a_dropped_socket_is_not_present_until_resumed(events: Events) -> None:
    app = build()
    async with DashClient(app, headers={"Cookie": "sid=a"}, resumable=True) as alice:
        await alice.open_renderer()
        await until(lambda: len(events.seen) == 1, "the join")
        await alice.drop()
        await until(lambda: len(events.seen) == 2, "the leave while detached")
        assert await room.presence() == []
        assert await alice.resume() is None
        await until(lambda: len(events.seen) == 3, "the join on resume")
        assert await present() == [("alice", "home")]
    assert [kind for kind, _, _ in events.kinds()] == ["join", "leave", "join", "leave"]


async def test_anonymous_tabs_and_limits() -> None:
    app = build()
    async with DashClient(app) as anonymous:
        tab = await anonymous.open_renderer()
        await until(present, "the anonymous entry")
        assert await present() == [(None, "home")]
        result = await tab.call("bigged.children", inputs={"big.n_clicks": 1})
        assert "keep the metadata small" in result.output("bigged", "children")
    with pytest.raises(RuntimeError, match="needs a tab"):
        await room.track({"page": "nowhere"})  # not in a WebSocket callback
