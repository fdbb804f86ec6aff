"""quartdash.broadcast, in-process backend: real hypercorn, real WebSocket clients.

The app is tests/apps/broadcast_app.py. Every tab runs a persistent callback
that iterates ``feed.subscribe()`` and appends each message to a store with
a ``Patch`` (never coalesced), so a client sees every message it was sent.
HTTP routes of the app publish, as a Quart route or a background task would.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from quartdash import broadcast
from quartdash.broadcast import envelope
from quartdash.testing import DashClient, TestRenderer

APP = "tests.apps.broadcast_app:asgi"


# ------------------------------------------------------------------------------ helpers


def appended(tab: TestRenderer) -> list[Any]:
    """The values the tab's ``log`` store received through Patch appends, in order."""
    values = []
    for push in tab.pushes_to("log", "data"):
        for operation in push.value["operations"]:
            assert operation["operation"] == "Append"
            values.append(operation["params"]["value"])
    return values


async def wait_appended(tab: TestRenderer, count: int, timeout: float = 5.0) -> list[Any]:
    await tab.client.wait_for(lambda: len(appended(tab)) >= count,
                              f"{count} messages on {tab.id}", timeout)
    return appended(tab)


async def stats(client: DashClient) -> dict[str, Any]:
    return await client.get_json("/stats")


async def wait_stats(client: DashClient, what: str, predicate: Any,
                     timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = await stats(client)
        if predicate(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; stats: {current}")
        await asyncio.sleep(0.05)


async def post(client: DashClient, path: str, body: Any) -> dict[str, Any]:
    response = await client.http("POST", path, json_body=body)
    assert response.status == 200, response.text
    return response.json()


async def open_tabs(url: str, connections: int, tabs_per_connection: int = 1
                    ) -> tuple[list[DashClient], list[TestRenderer]]:
    clients, tabs = [], []
    for _ in range(connections):
        client = DashClient(url)
        clients.append(client)
        for _ in range(tabs_per_connection):
            tabs.append(await client.open_renderer())
    return clients, tabs


async def close_all(clients: list[DashClient]) -> None:
    for client in clients:
        await client.aclose()


async def marker(control: DashClient, tabs: list[TestRenderer], text: str) -> None:
    """An app-wide set_props every tab must receive: once a tab has it, anything
    sent to that tab before it has arrived too (one ordered connection)."""
    await post(control, "/props", {"to": "app", "component": "banner",
                                   "props": {"children": text}, "retain": False})
    for tab in tabs:
        await tab.wait_for_push("banner", "children", where=lambda v: v == text)


# -------------------------------------------------------------------------------- tests


async def test_publish_reaches_every_tab_in_order(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, tabs = await open_tabs(server.url, 8)
    shared, shared_tabs = await open_tabs(server.url, 1, tabs_per_connection=3)  # one browser
    clients += shared
    tabs += shared_tabs
    try:
        control = clients[0]
        await wait_stats(control, "11 subscriptions", lambda s: s["subscriptions"] == 11)
        messages = [{"n": n, "text": f"message {n}"} for n in range(100)]
        for start in range(0, 100, 25):  # four publishing requests
            await post(control, "/publish", {"messages": messages[start:start + 25]})
        for tab in tabs:
            assert await wait_appended(tab, 100) == messages
        after = await stats(control)
        assert after["messages_delivered"] == 100 * 11
        assert after["published"] == 100
        assert after["subscriber_drops"] == 0
    finally:
        await close_all(clients)


async def test_a_def_callback_publishes_from_its_thread(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, (caller, other) = await open_tabs(server.url, 2)
    try:
        await wait_stats(clients[0], "2 subscriptions", lambda s: s["subscriptions"] == 2)
        result = await caller.call("sync-out.children", inputs={"sync-btn.n_clicks": 7})
        assert result.output("sync-out", "children") == "sent"
        for tab in (caller, other):
            assert await wait_appended(tab, 1) == ["from a thread 7"]
    finally:
        await close_all(clients)


async def test_leaving_tabs_and_sessions_leak_nothing(serve_app: Any) -> None:
    server = serve_app(APP)
    async with DashClient(server.url) as control:
        baseline = await stats(control)
        assert baseline["subscriptions"] == 0
        clients, tabs = await open_tabs(server.url, 5)
        pair, (stay, leave) = await open_tabs(server.url, 1, tabs_per_connection=2)
        clients += pair
        await wait_stats(control, "7 subscriptions", lambda s: s["subscriptions"] == 7)

        # One tab of a shared connection closes: only its subscription ends.
        await leave.leave()
        await wait_stats(control, "6 subscriptions", lambda s: s["subscriptions"] == 6)
        await post(control, "/publish", {"messages": ["after leave"]})
        assert await wait_appended(stay, 1) == ["after leave"]
        await marker(control, [*tabs, stay], "after-leave-marker")
        assert appended(leave) == []

        await close_all(clients)
        # Connection tasks finish a moment after their session: wait for the count.
        after = await wait_stats(
            control, "every session and task gone",
            lambda s: s["sessions"] == 0 and s["following"] == 0 and s["subscriptions"] == 0
            and s["tasks"] <= baseline["tasks"])
        # Every iteration ended by itself (is_shutdown), none was cancelled.
        assert after["clean_ends"] == 7
        assert after["cancelled"] == 0
        # No queue, membership or session record is left behind...
        assert after["members"] == 0
        assert after["sessions"] == 0
        # The app's own channel and the control channel (revoke), kept for the process.
        assert after["channels"] == 2
        # ...and no task: the server runs exactly what it ran before.
        assert after["tasks"] == baseline["tasks"]
        await asyncio.sleep(0.2)
        assert (await stats(control))["tasks"] == baseline["tasks"]
        delivered = after["messages_delivered"]
        await post(control, "/publish", {"messages": ["nobody listens"]})
        assert (await stats(control))["messages_delivered"] == delivered


async def test_topic_set_props_is_encoded_once_for_all_tabs(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, tabs = await open_tabs(server.url, 6)
    try:
        control = clients[0]
        before = await wait_stats(control, "6 members", lambda s: s["members"] == 6)
        await post(control, "/props", {"to": "feed", "component": "state",
                                       "props": {"children": "one value for all"}})
        for tab in tabs:
            # The client files a push under the rendererId it carries: each tab
            # got a frame addressed to itself.
            pushes = await tab.wait_for_push("state", "children")
            assert [p.value for p in pushes] == ["one value for all"]
            assert pushes[0].renderer_id == tab.id
        after = await stats(control)
        assert after["props_encoded"] - before["props_encoded"] == 1
        assert after["props_delivered"] - before["props_delivered"] == 6
    finally:
        await close_all(clients)


async def test_join_leave_and_retained_topic_state(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, (member, outsider) = await open_tabs(server.url, 2)
    try:
        control = clients[0]
        assert (await member.call("join-out.children",
                                  inputs={"join-btn.n_clicks": 1})).output(
            "join-out", "children") == "joined"
        await post(control, "/props", {"to": "room", "component": "room-state",
                                       "props": {"children": "v1"}})
        await member.wait_for_push("room-state", "children")
        await marker(control, [member, outsider], "m1")
        assert outsider.pushes_to("room-state", "children") == []

        # A tab that joins later starts from the retained value.
        late_clients, (late,) = await open_tabs(server.url, 1)
        clients += late_clients
        await late.call("join-out.children", inputs={"join-btn.n_clicks": 1})
        assert [p.value for p in await late.wait_for_push("room-state", "children")] == ["v1"]

        # retain=False is delivered but forgets the retained value.
        await post(control, "/props", {"to": "room", "component": "room-state",
                                       "props": {"children": "v2"}, "retain": False})
        for tab in (member, late):
            await tab.wait_for_push("room-state", "children", where=lambda v: v == "v2")
        later_clients, (later,) = await open_tabs(server.url, 1)
        clients += later_clients
        await later.call("join-out.children", inputs={"join-btn.n_clicks": 1})
        await marker(control, [later], "m2")
        assert later.pushes_to("room-state", "children") == []
    finally:
        await close_all(clients)


async def test_app_wide_set_props_reaches_every_tab_then_late_ones(serve_app: Any) -> None:
    server = serve_app(APP)
    async with DashClient(server.url) as control:
        # Set before any tab is open: kept, and given to each tab as it joins.
        await post(control, "/props", {"to": "app", "component": "banner",
                                       "props": {"children": "before anyone"}})
        clients, tabs = await open_tabs(server.url, 3, tabs_per_connection=2)
        try:
            for tab in tabs:
                await tab.wait_for_push("banner", "children")
            await post(control, "/props", {"to": "app", "component": "banner",
                                           "props": {"children": "hello everyone"}})
            for tab in tabs:
                pushes = await tab.wait_for_push("banner", "children", count=2)
                assert [p.value for p in pushes] == ["before anyone", "hello everyone"]
            # A tab opened afterwards starts from the latest value.
            late_clients, (late,) = await open_tabs(server.url, 1)
            clients += late_clients
            pushes = await late.wait_for_push("banner", "children")
            assert [p.value for p in pushes] == ["hello everyone"]
        finally:
            await close_all(clients)


async def test_slow_subscriber_blocks_neither_publisher_nor_others(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, (slow_tab, *fast_tabs) = await open_tabs(server.url, 4)
    try:
        control = clients[0]
        pending = await slow_tab.start("slow-out.children", inputs={"slow-btn.n_clicks": 1})
        await wait_stats(control, "5 subscriptions", lambda s: s["subscriptions"] == 5)

        messages = list(range(300))
        timing = await post(control, "/publish", {"messages": messages})
        # 300 publishes while one subscriber sleeps 0.25 s per message.
        assert timing["elapsed"] < 0.5
        for tab in fast_tabs:
            assert await wait_appended(tab, 300, timeout=5) == messages

        await post(control, "/publish", {"messages": ["stop"]})
        result = (await pending.result(timeout=10)).output("slow-out", "children")
        seen, dropped = result["seen"], result["dropped"]
        # The slow one saw only the newest few (a buffer of 4, oldest dropped;
        # plus the one it may have taken before the burst), in order, then "stop".
        assert seen[-1] == "stop"
        numbers = seen[:-1]
        assert numbers == sorted(numbers) and 1 <= len(numbers) <= 5
        assert numbers[-1] == 299
        assert dropped == 301 - len(seen)
    finally:
        await close_all(clients)


async def test_client_that_stops_reading_coalesces_and_blocks_nobody(serve_app: Any) -> None:
    server = serve_app(APP)
    clients, fast_tabs = await open_tabs(server.url, 2)
    control = clients[0]
    # A raw client with a tiny receive buffer that stops reading after joining.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.setblocking(False)
    slow = await connect(f"ws://127.0.0.1:{server.port}/_dash-ws-callback", sock=sock,
                         origin=server.url, max_queue=1, open_timeout=5, compression=None,
                         max_size=None, ping_interval=None)
    try:
        await slow.send(orjson.dumps({"type": "renderer_joined", "rendererId": "slow"}).decode())
        await wait_stats(control, "3 members", lambda s: s["members"] == 3)
        pad = "x" * 100_000
        count = 200  # 20 MB for the client that does not read
        started = time.monotonic()
        for start in range(0, count, 50):
            await post(control, "/props-burst", {"start": start, "count": 50, "pad": pad})
        assert time.monotonic() - started < 5
        for tab in fast_tabs:
            await tab.wait_for_push("state", "children", where=lambda v: v.startswith("199:"),
                                    timeout=10)

        # Now the slow client reads: it ends on the latest value and got far
        # fewer frames than were published (its outbox kept one per key).
        values = []
        deadline = time.monotonic() + 10
        while not (values and values[-1].startswith("199:")):
            assert time.monotonic() < deadline, f"slow client got {len(values)} values"
            frame = orjson.loads(await asyncio.wait_for(slow.recv(), timeout=5))
            for message in frame if isinstance(frame, list) else [frame]:
                payload = message.get("payload") or {}
                if payload.get("componentId") == "state":
                    values.append(payload["props"]["children"][:8])
        assert len(values) < count, len(values)
        numbers = [int(v.split(":")[0]) for v in values]
        assert numbers == sorted(numbers)
    finally:
        await slow.close()
        await close_all(clients)


# ------------------------------------------------------------- the hub on its own loop


async def until(predicate: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_subscription_buffer_drops_oldest_and_coalesces() -> None:
    hub = broadcast.Broadcast("memory://")
    topic = broadcast.Topic("unit", hub=hub)
    try:
        async with topic.subscribe(maxsize=3) as bounded, \
                topic.subscribe(maxsize=10, coalesce=lambda m: m.get("key")) as latest:
            for n in range(6):
                await topic.publish({"n": n, "key": "a" if n % 2 else None})
            got = [bounded._buffer.popitem(last=False)[1]["n"] for _ in range(3)]
            assert got == [3, 4, 5] and bounded.dropped == 3
            # Keyed messages replace their waiting predecessor and move to the end;
            # unkeyed ones all stay.
            assert [m["n"] for m in latest._buffer.values()] == [0, 2, 4, 5]
            assert latest.dropped == 0
        assert hub.stats()["subscriptions"] == 0
    finally:
        await hub.close()


async def test_iteration_ends_on_close_and_unsubscribes_on_break() -> None:
    hub = broadcast.Broadcast("memory://")
    topic = broadcast.Topic("unit", hub=hub)
    received: list[int] = []

    async def consume() -> None:
        async for message in topic.subscribe():
            received.append(message)
            if message == 2:
                break

    task = asyncio.create_task(consume())
    await until(lambda: hub.stats()["subscriptions"] == 1)
    for n in range(5):
        await topic.publish(n)
    await asyncio.wait_for(task, timeout=2)
    assert received == [0, 1, 2]
    await asyncio.sleep(0)  # let the async generator's finaliser run
    assert hub.stats()["subscriptions"] == 0

    # hub.close() ends an open iteration without an exception.
    waiting = asyncio.create_task(consume())
    await until(lambda: hub.stats()["subscriptions"] == 1)
    await hub.close()
    await asyncio.wait_for(waiting, timeout=2)


async def test_run_exclusive_runs_one_at_a_time_and_hands_over() -> None:
    hub = broadcast.Broadcast("memory://")
    running: list[str] = []
    started = asyncio.Event()

    async def work(name: str) -> None:
        running.append(name)
        started.set()
        await asyncio.sleep(3600)

    first = asyncio.create_task(broadcast.run_exclusive("job", work, "first", ttl=0.3, hub=hub))
    await asyncio.wait_for(started.wait(), timeout=2)
    second = asyncio.create_task(broadcast.run_exclusive("job", work, "second", ttl=0.3,
                                                         hub=hub))
    await asyncio.sleep(0.5)  # several lease periods: the second must still wait
    assert running == ["first"]
    first.cancel()
    await asyncio.wait({first}, timeout=2)
    await until(lambda: running == ["first", "second"])
    second.cancel()
    await asyncio.wait({second}, timeout=2)
    await hub.close()


def test_a_hub_moves_to_a_new_event_loop() -> None:
    """A server restarted in the same process (or a test per loop) starts afresh."""
    hub = broadcast.Broadcast("memory://")
    topic = broadcast.Topic("unit", hub=hub)

    async def once(value: int) -> Any:
        async with topic.subscribe() as subscription:
            await topic.publish(value)
            return await anext(aiter(subscription))

    assert asyncio.run(once(1)) == 1
    assert asyncio.run(once(2)) == 2
    assert hub.stats()["subscriptions"] == 0


def test_envelope_round_trip() -> None:
    from dash import Patch

    patch = Patch()
    patch.append("line\nbreak")
    update = envelope.PropsUpdate.of("chart", {"figure": {"a": "x\ny"}, "extra": patch},
                                     retain=True)
    decoded = envelope.decode(envelope.encode(update))
    assert decoded == update
    assert [item.is_patch for item in decoded.items] == [False, True]
    message = envelope.TopicMessage.of({"text": "multi\nline", "n": [1, 2]})
    assert envelope.decode(envelope.encode(message)).value() == {"text": "multi\nline",
                                                                  "n": [1, 2]}
    with pytest.raises(envelope.EnvelopeError):
        envelope.decode(b"X{}")


# --- retained state is bounded ------------------------------------------------------------


async def test_retained_state_is_bounded_in_keys_channels_and_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Topic names and component ids may follow user input: what the memory
    backend retains is capped per channel and per process, and expires."""
    from quartdash.broadcast import memory

    monkeypatch.setattr(memory, "RETAIN_KEYS", 3)
    monkeypatch.setattr(memory, "RETAIN_CHANNELS", 5)
    delivered: list[str] = []
    backend = memory.MemoryBackend(lambda channel, env: delivered.append(channel),
                                   lambda channel: None, lambda channel, state: None)

    def update(component: str) -> envelope.PropsUpdate:
        return envelope.PropsUpdate.of(component, {"children": component}, retain=True)

    for i in range(10):  # one channel, ten components: the newest three stay
        await backend.publish("room", update(f"c{i}"))
    assert [key[0] for key in backend._state["room"]] == ["c7", "c8", "c9"]
    for i in range(20):  # twenty channels: the five written last stay
        await backend.publish(f"room-{i}", update("c"))
    assert list(backend._state) == [f"room-{i}" for i in range(15, 20)]
    monkeypatch.setattr(memory, "RETAIN_TTL", 0.0)
    await asyncio.sleep(0.01)
    await backend.publish("fresh", update("c"))  # a write sweeps what expired
    assert list(backend._state) == ["fresh"]
    assert backend.stats["retained_expired"] >= 20
    assert len(delivered) == 31  # retention never stops delivery
