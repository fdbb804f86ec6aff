"""quartdash's blinker signals fire with their documented keyword arguments.

Driven in-process with ``quartdash.testing.DashClient`` (Quart's test
client), plus the documented metrics example under a real hypercorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dash import Input, Output, Patch, ctx, html, set_props
from dash.exceptions import PreventUpdate
from quart import Quart

from quartdash import DashBlueprint, signals
from quartdash.testing import DashClient
from tests.helpers import http_get

# The keyword arguments docs/signals.md promises, signal by signal.
DOCUMENTED = {
    "session_connected": {"session"},
    "session_disconnected": {"session", "code"},
    "renderer_joined": {"session", "renderer_id"},
    "renderer_left": {"session", "renderer_id"},
    "callback_started": {"session", "renderer_id", "callback_id"},
    "callback_finished": {"session", "renderer_id", "callback_id", "duration", "status"},
    "callback_failed": {"session", "renderer_id", "callback_id", "duration", "error",
                        "persistent"},
    "persistent_started": {"session", "renderer_id", "callback_id"},
    "persistent_stopped": {"session", "renderer_id", "callback_id", "duration"},
    "connection_rejected": {"reason", "code", "detail", "session"},
}

# --------------------------------------------------------------------------- the app

asgi = Quart(__name__)
app = DashBlueprint("signals", __name__, url_prefix="/app", websocket_callbacks=True)
app.layout = html.Div([
    html.Button(id="ok"), html.Div(id="ok-out"),
    html.Button(id="skip"), html.Div(id="skip-out"),
    html.Button(id="boom"), html.Div(id="boom-out"),
    html.Button(id="long"), html.Div(id="long-out"),
    html.Button(id="secret"), html.Div(id="secret-out"),
    html.Div(id="beat"),
])


@app.callback(Output("ok-out", "children"), Input("ok", "n_clicks"), prevent_initial_call=True)
async def ok(n: int) -> str:
    return f"ok {n}"


@app.callback(Output("skip-out", "children"), Input("skip", "n_clicks"),
              prevent_initial_call=True)
async def skip(n: int) -> str:
    raise PreventUpdate


@app.callback(Output("boom-out", "children"), Input("boom", "n_clicks"),
              prevent_initial_call=True)
async def boom(n: int) -> str:
    raise RuntimeError("boom")


@app.callback(Output("long-out", "children"), Input("long", "n_clicks"),
              prevent_initial_call=True)
async def long(n: int) -> str:
    set_props("long-out", {"children": "running"})
    await asyncio.sleep(60)
    return "never"


@app.callback(Output("secret-out", "children"), Input("secret", "n_clicks"),
              prevent_initial_call=True)
async def secret(n: int) -> str:
    return "secret"


@app.callback(persistent=True)
async def heartbeat_loop() -> None:
    ws = ctx.websocket
    while not ws.is_shutdown:
        set_props("beat", {"children": time.monotonic()})
        await asyncio.sleep(0.02)


@app.callback(persistent=True)
async def broken_loop() -> None:
    await asyncio.sleep(0)
    raise ValueError("persistent failure")


@app.websocket_connect
def refuse_banned(ws: Any) -> Any:
    if ws.cookies.get("banned"):
        return (4003, "banned user")
    return None


@app.websocket_message
def refuse_secret(ws: Any, message: dict[str, Any]) -> Any:
    if (message.get("payload") or {}).get("output") == "secret-out.children":
        return (4001, "no secrets")
    return None


# Tiny limits, to trip each one on purpose.
limited = DashBlueprint("limited", __name__, url_prefix="/limited", websocket_callbacks=True,
                        websocket_max_messages_per_second=5, websocket_max_message_size=2000,
                        websocket_max_pending=5)
limited.layout = html.Div([html.Button(id="flood"), html.Div(id="store")])


@limited.callback(Output("flood", "title"), Input("flood", "n_clicks"),
                  prevent_initial_call=True)
async def patch_storm(n: int) -> str:
    for i in range(20):  # patches never coalesce: more than max_pending wait at once
        patch = Patch()
        patch.append(i)
        set_props("store", {"children": patch})
    return "sent"


asgi.register_blueprint(app)
asgi.register_blueprint(limited)

SIGNAL_NAMES = list(DOCUMENTED)


class Recorder:
    """Every signal of one app, in order, as (name, kwargs)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def of(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [kw for n, kw in self.events
                if n == name and all(kw.get(k) == v for k, v in match.items())]

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0,
                   **match: Any) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.of(name, **match)) < count:  # noqa: ASYNC110 - signals are sync calls
                await asyncio.sleep(0.005)
        return self.of(name, **match)


@pytest.fixture
def record() -> Iterator[Callable[[Any], Recorder]]:
    """``record(host)`` -> a Recorder of that host's signals; disconnected at teardown."""
    connected: list[tuple[Any, Any]] = []

    def start(host: Any) -> Recorder:
        recorder = Recorder()
        for name in SIGNAL_NAMES:
            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                assert sender is host
                recorder.events.append((_name, kwargs))

            signal = getattr(signals, name)
            signal.connect(receiver, sender=host, weak=False)
            connected.append((signal, receiver))
        return recorder

    yield start
    for signal, receiver in connected:
        signal.disconnect(receiver)


def assert_documented(recorder: Recorder) -> None:
    for name, kwargs in recorder.events:
        assert set(kwargs) == DOCUMENTED[name], (name, sorted(kwargs))


def client(**options: Any) -> DashClient:
    return DashClient(app, server=asgi, **options)


# ------------------------------------------------------------------------- sessions


async def test_session_and_renderer_signals(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client() as c:
        first = await c.open_renderer("tab-1")
        second = await c.open_renderer("tab-2")
        await rec.wait("renderer_joined", 2)
        await second.leave()
        await rec.wait("renderer_left", renderer_id="tab-2")
        (connected,) = rec.of("session_connected")
        session = connected["session"]
        assert session in app.live.sessions
        assert session.connection["path"].startswith("/app/_dash-ws-callback")
        assert [kw["renderer_id"] for kw in rec.of("renderer_joined")] == ["tab-1", "tab-2"]
        assert all(kw["session"] is session for kw in rec.of("renderer_joined"))
        assert first.id == "tab-1"
    (disconnected,) = await rec.wait("session_disconnected")
    assert disconnected["session"] is session and disconnected["code"] is None  # the client left
    # The tab still open when the connection ended gets its renderer_left too.
    assert [kw["renderer_id"] for kw in rec.of("renderer_left")] == ["tab-2", "tab-1"]
    names = [name for name, _ in rec.events]
    assert names.index("session_connected") < names.index("renderer_joined")
    assert names[-1] == "session_disconnected"
    assert_documented(rec)


async def test_server_close_reports_its_code(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client() as c:
        await c.open_renderer()
        (connected,) = await rec.wait("session_connected")
        connected["session"].request_close(4001, "done here")
        assert await c.wait_closed() == (4001, "done here")
    (disconnected,) = await rec.wait("session_disconnected")
    assert disconnected["code"] == 4001
    assert_documented(rec)


# ------------------------------------------------------------------------ callbacks


async def test_callback_started_finished_failed_cancelled(
        record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client() as c:
        tab = await c.open_renderer("tab-1", join=False)  # no persistent noise yet
        assert (await tab.call("ok-out.children", inputs={"ok.n_clicks": 1})).ok
        assert (await tab.call("skip-out.children",
                               inputs={"skip.n_clicks": 1})).status == "prevent_update"
        assert (await tab.call("boom-out.children",
                               inputs={"boom.n_clicks": 1})).status == "error"
        await tab.start("long-out.children", inputs={"long.n_clicks": 1})
        await tab.wait_for_push("long-out", "children")
        started = rec.of("callback_started")
        assert [kw["callback_id"] for kw in started if kw["renderer_id"] == "tab-1"] == [
            "ok-out.children", "skip-out.children", "boom-out.children", "long-out.children"]
    (cancelled,) = await rec.wait("callback_finished", callback_id="long-out.children")
    assert cancelled["status"] == "cancelled"
    (finished_ok,) = rec.of("callback_finished", callback_id="ok-out.children")
    assert finished_ok["status"] == "ok" and 0 <= finished_ok["duration"] < 5
    (skipped,) = rec.of("callback_finished", callback_id="skip-out.children")
    assert skipped["status"] == "prevent_update"
    (failed,) = rec.of("callback_failed", callback_id="boom-out.children")
    assert isinstance(failed["error"], RuntimeError) and str(failed["error"]) == "boom"
    assert failed["persistent"] is False and failed["duration"] >= 0
    assert not rec.of("callback_finished", callback_id="boom-out.children")
    # Balanced: each start has exactly one end.
    ends = len(rec.of("callback_finished")) + len(rec.of("callback_failed", persistent=False))
    assert len(rec.of("callback_started")) == ends == 4
    assert_documented(rec)


async def test_persistent_started_stopped_and_failed(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client() as c:
        tab = await c.open_renderer("tab-1")
        await tab.wait_for_push("beat", "children")
        started = await rec.wait("persistent_started", 2)
        assert {kw["renderer_id"] for kw in started} == {"tab-1"}
        # The failing one: callback_failed(persistent=True), then persistent_stopped.
        (failed,) = await rec.wait("callback_failed", persistent=True)
        assert isinstance(failed["error"], ValueError)
        broken = failed["callback_id"]
        await rec.wait("persistent_stopped", callback_id=broken)
        looping = next(kw["callback_id"] for kw in started if kw["callback_id"] != broken)
        assert not rec.of("persistent_stopped", callback_id=looping)
        await tab.leave()
        (stopped,) = await rec.wait("persistent_stopped", callback_id=looping)
        assert stopped["renderer_id"] == "tab-1" and stopped["duration"] > 0
    assert not rec.of("callback_started")  # persistent runs send their own pair
    assert not rec.of("callback_finished")
    assert_documented(rec)


# ----------------------------------------------------------------------- rejections


async def test_connection_rejected_by_origin(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client(origin="https://evil.test") as c:
        await c.connect()
        code, reason = await c.wait_closed()
    (rejected,) = rec.of("connection_rejected")
    assert rejected == {"reason": "origin", "code": 4001, "detail": reason, "session": None}
    assert code == 4001 and reason == "Origin not allowed"  # the origin is not echoed
    assert not rec.of("session_connected")  # refused before a session existed
    assert_documented(rec)


async def test_connection_rejected_by_connect_hook(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client(headers={"Cookie": "banned=1"}) as c:
        await c.connect()
        assert await c.wait_closed() == (4003, "banned user")
    (rejected,) = rec.of("connection_rejected")
    assert rejected == {"reason": "hook", "code": 4003, "detail": "banned user", "session": None}
    assert_documented(rec)


async def test_connection_rejected_by_message_hook(record: Callable[[Any], Recorder]) -> None:
    rec = record(app.live)
    async with client() as c:
        tab = await c.open_renderer(join=False)
        await tab.start("secret-out.children", inputs={"secret.n_clicks": 1})
        assert await c.wait_closed() == (4001, "no secrets")
    (rejected,) = await rec.wait("connection_rejected")
    (session,) = rec.of("session_connected")
    assert rejected["reason"] == "hook" and rejected["code"] == 4001
    assert rejected["detail"] == "no secrets" and rejected["session"] is session["session"]
    assert_documented(rec)


async def test_connection_rejected_by_limits(record: Callable[[Any], Recorder]) -> None:
    rec = record(limited.live)
    # Flood: a burst of twice max_messages_per_second, then one more (messages
    # that need no answer, so the small max_pending plays no part).
    async with DashClient(limited, server=asgi) as c:
        await c.connect()
        await c.send([{"type": "renderer_joined", "rendererId": f"r{i}"} for i in range(11)])
        assert (await c.wait_closed())[0] == 4008
    # A frame larger than max_message_size.
    async with DashClient(limited, server=asgi) as c:
        await c.connect()
        await c.send_text(json.dumps({"type": "heartbeat", "pad": "x" * 3000}))
        assert (await c.wait_closed())[0] == 1008
    # Slow consumer: more frames waiting than max_pending.
    async with DashClient(limited, server=asgi) as c:
        tab = await c.open_renderer(join=False)
        await tab.start("flood.title", inputs={"flood.n_clicks": 1})
        assert (await c.wait_closed())[0] == 4009
    await rec.wait("session_disconnected", 3)
    rejected = rec.of("connection_rejected", reason="limit")
    assert [kw["code"] for kw in rejected] == [4008, 1008, 4009]
    sessions = [kw["session"] for kw in rec.of("session_connected")]
    assert [kw["session"] for kw in rejected] == sessions
    assert "too many messages" in rejected[0]["detail"]
    assert "exceeds" in rejected[1]["detail"]
    assert "slow client" in rejected[2]["detail"]
    assert [kw["code"] for kw in rec.of("session_disconnected")] == [4008, 1008, 4009]
    assert_documented(rec)


# --------------------------------------------------------------------- receivers


async def test_sender_narrows_to_one_app(record: Callable[[Any], Recorder]) -> None:
    other = record(limited.live)
    rec = record(app.live)
    async with client() as c:
        await c.open_renderer(join=False)
        await c.heartbeat()
    await rec.wait("session_disconnected")
    assert other.events == []


async def test_a_raising_receiver_is_logged_and_harmless(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    def healthy(sender: Any, **kwargs: Any) -> None:
        calls.append("healthy")

    async def later(sender: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        calls.append("async")

    for receiver in (broken, healthy, later):
        signals.session_connected.connect(receiver, sender=app.live, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="quartdash.signals"):
            async with client() as c:
                tab = await c.open_renderer(join=False)
                result = await tab.call("ok-out.children", inputs={"ok.n_clicks": 3})
                assert result.output("ok-out", "children") == "ok 3"
    finally:
        for receiver in (broken, healthy, later):
            signals.session_connected.disconnect(receiver)
    assert sorted(calls) == ["async", "healthy"]
    errors = [r for r in caplog.records if r.name == "quartdash.signals"]
    assert len(errors) == 1 and "receiver bug" in repr(errors[0].exc_info[1])


# ------------------------------------------------------------------ the metrics example


def test_metrics_example_under_hypercorn(serve_app: Any) -> None:
    server = serve_app("examples.metrics:asgi")

    def metrics() -> dict[str, Any]:
        response = http_get(server.http_url("/metrics"), timeout=5)
        assert response.status == 200
        return json.loads(response.body)

    def until(predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            now = metrics()
            if predicate(now):
                return now
            assert time.monotonic() < deadline, now
            time.sleep(0.1)

    assert metrics()["open_sessions"] == 0

    async def browse() -> None:
        async with DashClient(server.url + "/") as c:
            first = await c.open_renderer()
            await c.open_renderer()
            await first.wait_for_push("clock", "children")
            now = await asyncio.to_thread(
                until, lambda m: m["open_tabs"] == 2 and m["pushes_per_second"] >= 8)
            assert now["open_sessions"] == 1 and now["running_persistent_callbacks"] == 2
            # Two tabs, ten pushes a second each: 20 per second at most (the window
            # may still reach back to before the tabs opened).
            assert now["pushes_per_second"] <= 25, now
            failed = await first.call("fail-out.children", inputs={"fail.n_clicks": 1})
            assert failed.status == "error"
            pending = await first.start("work-out.children", inputs={"work.n_clicks": 1})
            await first.wait_for_push("work-out", "children")
            busy = await asyncio.to_thread(metrics)
            assert busy["running_callbacks"] == 1 and busy["failed_callbacks"] == 1, busy
            assert (await pending.result()).output("work-out", "children") == "done"

    asyncio.run(browse())
    idle = until(lambda m: m["open_sessions"] == 0)
    assert idle["open_tabs"] == 0 and idle["running_persistent_callbacks"] == 0, idle
    assert idle["running_callbacks"] == 0, idle
    output = server.output()
    assert "session opened from" in output and "callback fail-out.children failed" in output
