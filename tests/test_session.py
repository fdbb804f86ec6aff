"""quartdash.session: the session core, driven with a fake app and a fake socket.

No Dash app and no Quart: the session meets its app through
``quartdash.types.SessionApp`` and its socket through
``quartdash.types.Transport``, and these tests provide both. What the real
glue adds (Dash's callback machinery, Quart's websocket) is tested against
real servers elsewhere (tests/test_websocket_protocol.py and others).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from quartdash.config import WebSocketConfig
from quartdash.session import Session, State
from quartdash.session import sender as sender_module
from quartdash.session.deadlines import deadlines
from quartdash.session.registry import SessionRegistry
from quartdash.types import CallbackInfo, Verdict

Callback = Callable[[dict[str, Any], Any], Awaitable[Any]]


class Disconnected(Exception):
    """What this fake app's get_prop raises once the tab or session is gone."""


@dataclass(eq=False)
class FakeApp:
    """A SessionApp with callbacks written as ``async def cb(payload, ws)``."""

    config: WebSocketConfig = field(default_factory=WebSocketConfig)
    callbacks: dict[str, Callback] = field(default_factory=dict)
    persistent: list[str] = field(default_factory=list)
    websocket_only: bool = True
    opened: list[Session] = field(default_factory=list)
    closed: list[Session] = field(default_factory=list)
    registry: SessionRegistry = field(default_factory=SessionRegistry)
    retrigger: dict[str, str] = field(default_factory=dict)  # callback id -> on_retrigger

    @property
    def shutdown_grace(self) -> float:
        return self.config.shutdown_grace

    def callback(self, callback_id: str, *, persistent: bool = False
                 ) -> Callable[[Callback], Callback]:
        def register(func: Callback) -> Callback:
            self.callbacks[callback_id] = func
            if persistent:
                self.persistent.append(callback_id)
            return func
        return register

    def callback_info(self, callback_id: str) -> CallbackInfo | None:
        if callback_id not in self.callbacks:
            return None
        return CallbackInfo(callback_id, self.websocket_only,
                            self.retrigger.get(callback_id, "cancel"))

    def request_problem(self, callback_id: str, payload: Mapping[str, Any]) -> str | None:
        want = 0 if callback_id in self.persistent else 1
        got = len(payload.get("inputs", []))
        return None if got == want else f"takes {want} inputs, the request has {got}"

    def persistent_callback_ids(self) -> Sequence[str]:
        return list(self.persistent)

    async def run_callback(self, payload: dict[str, Any], handle: Any,
                           connection: Mapping[str, Any]) -> bytes | None:
        result = await self.callbacks[payload["output"]](payload, handle)
        return None if result is None else json.dumps(result).encode()

    def failure_message(self, error: Exception) -> str:
        return "failed"

    def prepare_prop(self, component_id: str, prop: str, value: Any) -> tuple[Any, bool]:
        if prop == "forbidden":
            raise ValueError("refused")
        return value, False

    def disconnected(self, reason: str) -> Exception:
        return Disconnected(reason)

    has_message_hooks = False

    async def check_message(self, connection: Mapping[str, Any],
                            raw: dict[str, Any]) -> Verdict | None:
        return None

    def session_opened(self, session: Any) -> None:
        self.opened.append(session)
        self.registry.add(session)

    def session_closed(self, session: Any) -> None:
        self.closed.append(session)


class FakeTransport:
    """A socket in memory: the test feeds frames in and reads what was sent."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed_with: tuple[int, str] | None = None
        self._arrived = asyncio.Event()

    async def receive(self) -> str | bytes:
        data = await self.inbound.get()
        if data is None:
            raise ConnectionError("the client went away")
        return data

    async def send(self, text: str) -> None:
        decoded = json.loads(text)
        self.sent.extend(decoded if isinstance(decoded, list) else [decoded])
        self._arrived.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    def feed(self, *messages: dict[str, Any]) -> None:
        for message in messages:
            self.inbound.put_nowait(json.dumps(message))

    async def wait_for(self, match: Callable[[dict[str, Any]], bool],
                       timeout: float = 2.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.sent:
                    if match(message):
                        return message
                self._arrived.clear()
                await self._arrived.wait()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` every 10 ms; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {timeout} s")


def request(callback_id: str, request_id: str, renderer: str = "r1",
            inputs: int = 1) -> dict[str, Any]:
    return {"type": "callback_request", "rendererId": renderer, "requestId": request_id,
            "payload": {"output": callback_id,
                        "inputs": [{"id": "b", "property": "n_clicks", "value": 1}] * inputs,
                        "state": [], "changedPropIds": []}}


def response_to(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "callback_response" and m.get("requestId") == request_id


@dataclass
class Running:
    app: FakeApp
    session: Session
    transport: FakeTransport
    task: asyncio.Task[None]

    async def client_leaves(self) -> None:
        self.transport.inbound.put_nowait(None)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(self.task, timeout=5)


@pytest.fixture
def app() -> FakeApp:
    return FakeApp(config=replace(WebSocketConfig(), shutdown_grace=0.5))


@pytest.fixture
async def running(app: FakeApp) -> AsyncIterator[Running]:
    session = Session(app, {"headers": {}})
    transport = FakeTransport()
    task = asyncio.create_task(session.serve(transport))
    await asyncio.sleep(0)
    yield Running(app, session, transport, task)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_callback_request_runs_and_is_answered(running: Running) -> None:
    @running.app.callback("out.children")
    async def echo(payload: dict[str, Any], ws: Any) -> Any:
        ws.set_prop_sync("progress", "children", "half way")
        return {"multi": True, "response": {"out": {"children": "done"}}}

    running.transport.feed(request("out.children", "q1"))
    reply = await running.transport.wait_for(response_to("q1"))
    assert reply["payload"]["status"] == "ok"
    assert reply["payload"]["data"]["response"]["out"]["children"] == "done"
    push = next(m for m in running.transport.sent if m["type"] == "set_props")
    assert push == {"type": "set_props", "rendererId": "r1",
                    "payload": {"componentId": "progress", "props": {"children": "half way"}}}
    assert running.session.renderers.keys() == {"r1"}


async def test_refusals_name_the_rule(running: Running) -> None:
    @running.app.callback("x.y")
    async def one_input(payload: dict[str, Any], ws: Any) -> Any:
        return "never run"

    running.transport.feed(request("nope.children", "q1"), request("x.y", "q2", inputs=3))
    unknown = await running.transport.wait_for(response_to("q1"))
    assert unknown["payload"]["code"] == "unknown_callback"
    mismatch = await running.transport.wait_for(response_to("q2"))
    assert mismatch["payload"]["code"] == "bad_message"
    assert "takes 1 inputs, the request has 3" in mismatch["payload"]["message"]


async def test_persistent_callbacks_start_once_per_tab(running: Running) -> None:
    starts: list[str] = []

    @running.app.callback("live.children", persistent=True)
    async def live(payload: dict[str, Any], ws: Any) -> Any:
        starts.append(ws.renderer_id)
        while not ws.is_shutdown:  # noqa: ASYNC110 - the persistent-callback idiom
            await asyncio.sleep(0.01)
        return None

    # Recreate the session's run bookkeeping now that the app has a persistent callback.
    session = Session(running.app, {})
    transport = FakeTransport()
    task = asyncio.create_task(session.serve(transport))
    transport.feed({"type": "renderer_joined", "rendererId": "a"},
                   request("live.children", "p1", "a", inputs=0),
                   request("live.children", "p2", "a", inputs=0),
                   {"type": "renderer_joined", "rendererId": "b"})
    superseded = await transport.wait_for(response_to("p1"))
    assert superseded["payload"] == {"status": "prevent_update"}
    await asyncio.sleep(0.05)
    assert sorted(starts) == ["a", "b"]  # one per tab, the re-requests started none
    transport.inbound.put_nowait(None)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(task, timeout=5)
    assert session.state is State.CLOSED and len(session.runs) == 0


async def test_get_prop_asks_the_tab_and_returns_its_answer(running: Running) -> None:
    @running.app.callback("read.children")
    async def read(payload: dict[str, Any], ws: Any) -> Any:
        return await ws.get_prop("name", "value", timeout=2)

    running.transport.feed(request("read.children", "q1"))
    ask = await running.transport.wait_for(lambda m: m["type"] == "get_props_request")
    assert ask["payload"] == {"componentId": "name", "properties": ["value"]}
    # Another tab's answer is refused, and the question stays open for its own tab.
    running.transport.feed({"type": "get_props_response", "rendererId": "r2",
                            "requestId": ask["requestId"], "payload": {"value": "forged"}})
    await running.transport.wait_for(lambda m: m["type"] == "error")
    running.transport.feed({"type": "get_props_response", "rendererId": "r1",
                            "requestId": ask["requestId"], "payload": {"value": "Ada"}})
    reply = await running.transport.wait_for(response_to("q1"))
    assert reply["payload"]["data"] == "Ada"
    assert len(running.session.reads) == 0


async def test_a_tab_that_leaves_cancels_its_callbacks(running: Running) -> None:
    seen: list[str] = []

    @running.app.callback("slow.children")
    async def slow(payload: dict[str, Any], ws: Any) -> Any:
        try:
            await ws.get_prop("x", "value", timeout=30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    running.transport.feed(request("slow.children", "q1"))
    await running.transport.wait_for(lambda m: m["type"] == "get_props_request")
    running.transport.feed({"type": "renderer_left", "rendererId": "r1"})
    await until(lambda: not (len(running.session.runs) or len(running.session.reads)))
    assert seen == ["cancelled"]
    assert "r1" not in running.session.renderers


async def test_a_refused_prop_raises_in_the_callback(running: Running) -> None:
    errors: list[str] = []

    @running.app.callback("out.children")
    async def bad(payload: dict[str, Any], ws: Any) -> Any:
        try:
            ws.set_prop_sync("x", "forbidden", 1)
        except ValueError as error:
            errors.append(str(error))
        return None

    running.transport.feed(request("out.children", "q1"))
    reply = await running.transport.wait_for(response_to("q1"))
    assert reply["payload"] == {"status": "prevent_update"} and errors == ["refused"]
    assert not any(m["type"] == "set_props" for m in running.transport.sent)


async def test_the_client_leaving_ends_everything(running: Running) -> None:
    @running.app.callback("slow.children")
    async def slow(payload: dict[str, Any], ws: Any) -> Any:
        await asyncio.sleep(30)

    running.transport.feed(request("slow.children", "q1"))
    await until(lambda: len(running.session.runs) > 0)
    await running.client_leaves()
    assert running.session.state is State.CLOSED
    assert running.app.opened == running.app.closed == [running.session]
    assert len(running.session.runs) == 0 and running.transport.closed_with is None


async def test_the_server_closing_sends_its_code(running: Running) -> None:
    running.session.request_close(4001, "done here")
    assert running.session.state is State.CLOSING
    await until(lambda: running.transport.closed_with is not None)
    assert running.transport.closed_with == (4001, "done here")
    await running.client_leaves()  # the client answers our close
    assert running.session.state is State.CLOSED and running.session.close_code == 4001


async def test_an_idle_session_holds_no_sender_task(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sending task ends once nothing was sent for SENDER_IDLE seconds; the
    next frame starts another, and what a callback pushes arrives in order."""
    monkeypatch.setattr(sender_module, "SENDER_IDLE", 0.05)
    sender = running.session.sender

    def sender_tasks() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() if t.get_name() == "quartdash-sender"
                and not t.done()]

    running.transport.feed({"type": "heartbeat"})
    await running.transport.wait_for(lambda m: m["type"] == "heartbeat_ack")
    await until(lambda: not sender_tasks() and sender._task is None)
    pushed = asyncio.Event()

    @running.app.callback("out.children")
    async def burst(payload: dict[str, Any], ws: Any) -> Any:
        for n in range(5):
            ws.set_prop_sync(f"c{n}", "children", n)
            await asyncio.sleep(0.02 * n)  # gaps shorter and longer than SENDER_IDLE
        pushed.set()
        return {"multi": True, "response": {"out": {"children": "done"}}}

    running.transport.feed(request("out.children", "q1"))
    await running.transport.wait_for(response_to("q1"))
    assert pushed.is_set()
    assert [m["payload"]["componentId"] for m in running.transport.sent
            if m["type"] == "set_props"] == [f"c{n}" for n in range(5)]
    await until(lambda: not sender_tasks() and sender._task is None)
    assert sender._idle_timer is None and sender._waiter is None
    assert sender._watchdog is None  # and no timer watches its sends
    running.transport.feed({"type": "heartbeat"})
    await until(lambda: sum(m["type"] == "heartbeat_ack"
                            for m in running.transport.sent) == 2)


async def test_a_lone_frame_after_a_quiet_stretch_ends_its_task_at_once(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat's ack after a quiet stretch: its task sends it and ends,
    holding no future and no idle timer for SENDER_IDLE; a frame right after
    another keeps its task waiting for more (a pusher's steady state)."""
    monkeypatch.setattr(sender_module, "SENDER_IDLE", 0.5)
    sender = running.session.sender

    def acks() -> int:
        return sum(m["type"] == "heartbeat_ack" for m in running.transport.sent)

    await until(lambda: sender._task is None)  # whatever the start sent is done
    await asyncio.sleep(0.6)  # quiet for longer than SENDER_IDLE
    running.transport.feed({"type": "heartbeat"})
    await until(lambda: acks() == 1)
    await until(lambda: sender._task is None, timeout=0.2)  # well before SENDER_IDLE
    assert sender._idle_timer is None and sender._waiter is None
    running.transport.feed({"type": "heartbeat"})  # right after the last one
    await until(lambda: acks() == 2)
    await asyncio.sleep(0.05)
    assert sender._task is not None and sender._waiter is not None
    await until(lambda: sender._task is None, timeout=1.0)  # then SENDER_IDLE ends it


async def test_idle_sessions_share_the_loops_timers() -> None:
    """Sessions arm their inactivity deadline in the loop's shared table (a
    few timers for many sessions) and close with 4001 when it comes."""
    app = FakeApp(config=replace(WebSocketConfig(), inactivity_timeout=400))
    table = deadlines(asyncio.get_running_loop())
    before = len(table)
    started = asyncio.get_running_loop().time()
    pairs: list[tuple[Session, FakeTransport, asyncio.Task[Any]]] = []
    for _ in range(50):
        session, transport = Session(app, {}), FakeTransport()
        pairs.append((session, transport, asyncio.create_task(session.serve(transport))))
    await asyncio.sleep(0.05)
    assert len(table) - before == 50 and table.timers <= 3
    await until(lambda: all(t.closed_with is not None for _, t, _ in pairs), timeout=3)
    took = asyncio.get_running_loop().time() - started
    assert all(t.closed_with == (4001, "Inactivity timeout") for _, t, _ in pairs)
    assert 0.4 <= took <= 1.5
    for _, transport, _task in pairs:
        transport.inbound.put_nowait(None)
    await asyncio.gather(*(task for _, _, task in pairs), return_exceptions=True)
    assert all(s.state is State.CLOSED for s, _, _ in pairs)
    assert len(table) == before


@pytest.mark.parametrize("limits, frames, code", [
    ({"max_message_size": 64}, ['{"type": "heartbeat", "pad": "' + "x" * 100 + '"}'], 1008),
    ({"max_messages_per_second": 5}, ['{"type": "heartbeat"}'] * 11, 4008),
    ({"max_retained_bytes": 300}, [json.dumps({"type": "renderer_joined",
                                               "rendererId": "r" * 100})], 4010),
])
async def test_limits_close_with_their_code(limits: dict[str, int], frames: list[str],
                                            code: int) -> None:
    app = FakeApp(config=replace(WebSocketConfig(), **limits))
    session = Session(app, {})
    transport = FakeTransport()
    task = asyncio.create_task(session.serve(transport))
    for frame in frames:
        transport.inbound.put_nowait(frame)
    await until(lambda: transport.closed_with is not None)
    assert transport.closed_with[0] == code
    transport.inbound.put_nowait(None)
    await asyncio.gather(task, return_exceptions=True)
    assert session.state is State.CLOSED
