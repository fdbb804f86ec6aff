"""Faults: abrupt disconnects, slow readers, server shutdown, network blips, crashing callbacks.

The served app (tests/apps/rel_app.py) reports its live asyncio tasks,
session sessions, pending ``get_prop`` futures, running callbacks, RSS, open
file descriptors and per-callback start/cleanup counters at ``/_rel/stats``;
each test compares them before and after the fault.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from tests.apps import rel_client as rc
from tests.helpers import REPO_ROOT, SERVERS, open_page

APP = "tests.apps.rel_app:asgi"
FAULTS_ENV = {"REL_SEND_TIMEOUT": "1", "REL_MAX_PENDING": "1000", "REL_MAX_CONCURRENT": "16"}


@pytest.fixture(params=SERVERS)
def server(serve_app_session: Any, request: pytest.FixtureRequest) -> Any:
    """rel_app on each server: resets, slow readers and overflows are network
    behaviour, and each server has its own flow control."""
    return serve_app_session(APP, env=FAULTS_ENV, server=request.param)


async def quiet(server: Any) -> dict[str, Any]:
    """The server's figures once no session is left (the baseline to return to)."""
    return await rc.wait_stats(server, lambda s: s["sessions"] == 0 and s["runs"] == 0,
                               what="no sessions")


async def back_to(server: Any, baseline: dict[str, Any], **cleanups: int) -> dict[str, Any]:
    """Wait until nothing is left of the sessions and ``counters`` grew by ``cleanups``."""
    def done(s: dict[str, Any]) -> bool:
        grown = all(s["counters"].get(k, 0) - baseline["counters"].get(k, 0) == v
                    for k, v in cleanups.items())
        return (grown and s["sessions"] == 0 and s["runs"] == 0 and s["pending_props"] == 0
                and s["tasks"] <= baseline["tasks"] and s["fds"] <= baseline["fds"])
    return await rc.wait_stats(server, done, timeout=10, what=f"cleanup {cleanups}")


def delta(before: dict[str, Any], after: dict[str, Any], key: str) -> int:
    return after["counters"].get(key, 0) - before["counters"].get(key, 0)


# --- abrupt disconnect (TCP reset) ------------------------------------------------


async def test_reset_during_get_prop(server: Any) -> None:
    baseline = await quiet(server)
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.click("gp-btn", "gp-out.children", request_id="g"))
    await rc.recv_until(ws, rc.of_type("get_props_request"))
    during = await rc.astats(server)
    assert during["pending_props"] == 1 and during["sessions"] == 1
    assert during["tasks"] > baseline["tasks"]
    rc.reset(ws)
    after = await back_to(server, baseline, getprop_cleanup=1, persistent_cleanup=1)
    # The waiting get_prop future was resolved (with WebsocketDisconnected),
    # so the callback ended at once instead of timing out after 60 s.
    assert delta(baseline, after, "getprop_cancelled") == 1


async def test_reset_during_streaming_callback(server: Any) -> None:
    baseline = await quiet(server)
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.click("stream-btn", "stream-out.children", request_id="s"))
    for _ in range(5):
        await rc.recv_until(ws, lambda m: m.get("type") == "set_props"
                            and m["payload"]["componentId"] == "stream-live")
    rc.reset(ws)
    after = await back_to(server, baseline, stream_cleanup=1, persistent_cleanup=1)
    assert delta(baseline, after, "stream_cancelled") == 1  # seed: CancelledError on disconnect


async def test_reset_during_persistent_callback_raw_socket(server: Any) -> None:
    """Below the WebSocket library: a hand-made handshake, then an RST."""
    baseline = await quiet(server)
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, server)
    raw.send_json(rc.joined("raw"))
    await rc.wait_stats(server, lambda s: s["persistent_live"].get("raw") == 1,
                        what="the persistent callback running")
    raw.reset()
    after = await back_to(server, baseline, persistent_cleanup=1)
    assert delta(baseline, after, "persistent_saw_shutdown") == 1  # seed: loop sees is_shutdown
    assert after["persistent_live"] == {}


async def test_reset_with_many_tabs_and_callbacks_in_flight(server: Any) -> None:
    baseline = await quiet(server)
    ws = await rc.open_ws(server)
    for tab in ("t1", "t2", "t3"):
        await rc.send(ws, rc.click("gp-btn", "gp-out.children", renderer=tab,
                                   request_id=f"g-{tab}"))
        await rc.send(ws, rc.click("stream-btn", "stream-out.children", renderer=tab,
                                   request_id=f"s-{tab}"))
    await rc.wait_stats(server, lambda s: s["pending_props"] == 3 and s["runs"] == 9,
                        what="3 tabs x (persistent + stream + get_prop)")
    rc.reset(ws)
    await back_to(server, baseline, persistent_cleanup=3, stream_cleanup=3, getprop_cleanup=3)


async def test_tab_leaving_resolves_its_futures_only(server: Any) -> None:
    baseline = await quiet(server)
    ws = await rc.open_ws(server)
    for tab in ("stay", "go"):
        await rc.send(ws, rc.click("gp-btn", "gp-out.children", renderer=tab,
                                   request_id=f"g-{tab}"))
    asks = {}
    while len(asks) < 2:
        ask = await rc.recv_until(ws, rc.of_type("get_props_request"))
        asks[ask["rendererId"]] = ask["requestId"]
    await rc.send(ws, {"type": "renderer_left", "rendererId": "go"})
    await rc.wait_stats(server, lambda s: s["pending_props"] == 1
                        and delta(baseline, s, "getprop_cleanup") == 1, what="tab go ended")
    # The other tab's question is still open and still answered.
    await rc.send(ws, {"type": "get_props_response", "rendererId": "stay",
                       "requestId": asks["stay"], "payload": {"value": "still here"}})
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "g-stay"))
    assert reply["payload"]["data"]["response"]["gp-out"]["children"] == "got still here"
    await ws.close()
    await back_to(server, baseline, getprop_cleanup=2, persistent_cleanup=2)


# --- slow readers ----------------------------------------------------------------


async def test_client_that_stops_reading_is_closed_4009(server: Any) -> None:
    """Coalesced pushes of 256 KiB: the outbox stays at one frame, the send blocks,
    and after websocket_send_timeout (1 s here) the session is closed with 4009."""
    baseline = await quiet(server)
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, server, rcvbuf=4096)
    raw.send_json(rc.click("big-btn", "big-out.children", request_id="big"))
    started = time.monotonic()
    peak = baseline["rss"]
    while True:  # never reads; the server must give up on its own
        stats = await rc.astats(server)
        peak = max(peak, stats["rss"])
        if stats["sessions"] == 0 and stats["counters"].get("big_cleanup", 0) > baseline[
                "counters"].get("big_cleanup", 0):
            break
        assert time.monotonic() - started < 8, f"not closed: {stats}"
        await asyncio.sleep(0.1)
    closed_after = time.monotonic() - started
    assert 1.0 <= closed_after < 8, closed_after  # send timeout 1 s + close frame <= 2 s
    assert peak - baseline["rss"] < 48 * 2**20, f"RSS grew {(peak - baseline['rss']) >> 20} MiB"
    assert stats["close_codes"].get("4009", 0) > baseline["close_codes"].get("4009", 0)
    # What the client finds once it reads again: the data, then close 4009.
    assert await asyncio.to_thread(raw.read_close_code, 10) == 4009
    raw.close()
    await back_to(server, baseline, big_cleanup=1)


async def test_outbox_overflow_is_closed_4009(server: Any) -> None:
    """Patches are never coalesced: 1000 waiting frames (websocket_max_pending) close 4009."""
    baseline = await quiet(server)
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, server, rcvbuf=4096)
    raw.send_json(rc.click("blast-btn", "blast-out.children", request_id="blast"))
    stats = await rc.wait_stats(
        server, lambda s: s["close_codes"].get("4009", 0) > baseline["close_codes"].get(
            "4009", 0), timeout=8, what="close 4009")
    # 1000 frames of 16 KiB at most were ever waiting.
    assert stats["rss"] - baseline["rss"] < 64 * 2**20
    assert await asyncio.to_thread(raw.read_close_code, 10) == 4009
    raw.close()
    await back_to(server, baseline, blast_cleanup=1)


# --- server shutdown -------------------------------------------------------------


@pytest.mark.parametrize(("server_name", "workers", "sig"), [
    ("hypercorn", 1, signal.SIGTERM),
    ("hypercorn", 0, signal.SIGTERM),
    ("uvicorn", 1, signal.SIGTERM),
    ("uvicorn", 2, signal.SIGINT),
    ("granian", 1, signal.SIGTERM),
    ("granian", 1, signal.SIGINT),
], ids=["hypercorn-worker-process", "in-process", "uvicorn", "uvicorn-workers-sigint",
        "granian", "granian-sigint"])
async def test_sigterm_closes_1001_and_runs_cleanup(serve_app: Any, server_name: str,
                                                    workers: int, sig: int) -> None:
    """Every server: the session is closed with 1001 (not uvicorn's 1012 nor
    granian's dropped socket), the persistent callback sees is_shutdown, the
    stubborn one is cancelled after the grace, and the server exits."""
    server = serve_app(APP, env={"REL_STUBBORN": "1", "REL_SHUTDOWN_GRACE": "1"},
                       workers=workers, server=server_name)
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.joined("r1"))
    await rc.send(ws, rc.click("slow-btn", "slow-out.children", request_id="slow"))
    await rc.wait_stats(server, lambda s: s["counters"].get("slow_started") == 1
                        and s["counters"].get("stubborn_started") == 1
                        and s["persistent_live"] == {"r1": 1}, what="callbacks running")
    started = time.monotonic()
    stopping = asyncio.create_task(asyncio.to_thread(server.stop, sig, 15))
    code = await rc.wait_closed(ws, timeout=10)
    exit_code = await stopping
    took = time.monotonic() - started
    output = server.output()
    assert code == 1001, output
    assert exit_code == server.exit_code_after(sig), output
    assert took < 6, f"exit took {took:.1f}s\n{output}"
    assert "cleanup persistent via=is_shutdown" in output  # the loop saw is_shutdown
    assert "cleanup stubborn via=cancelled" in output  # ignored it: cancelled after grace
    assert "cleanup slow via=cancelled" in output  # event-triggered: CancelledError
    assert "Traceback" not in output, output


# --- a callback that raises ---------------------------------------------------------


async def test_callback_error_reaches_client_and_log(server: Any) -> None:
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.click("boom-btn", "boom-out.children", request_id="boom"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "boom"))
    assert reply["payload"] == {"status": "error",
                                "message": "Callback error (see the server log)"}
    await rc.expect_alive(ws)  # the connection stays up
    await ws.close()
    output = server.output()
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: boom with s3cr3t-token-7f1c" in output


async def test_callback_error_in_debug_mode_carries_the_traceback(serve_app_session: Any
                                                                  ) -> None:
    server = serve_app_session(APP, env={"REL_DEBUG": "1"})
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.click("boom-btn", "boom-out.children", request_id="boom"))
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "boom"))
    assert reply["payload"]["status"] == "error"
    assert "RuntimeError: boom with s3cr3t-token-7f1c" in reply["payload"]["message"]
    assert "Traceback" in reply["payload"]["message"]
    await rc.expect_alive(ws)
    await ws.close()


# --- churn ---------------------------------------------------------------------------


def _soak_module() -> Any:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import soak  # bench/soak.py
    finally:
        sys.path.pop(0)
    return soak


async def test_short_churn_leaks_nothing(serve_app: Any) -> None:
    """Eight seconds of bench/soak.py's churn; the 10-minute run is bench/SOAK.md."""
    soak = _soak_module()
    server = serve_app(APP, env=soak.SERVER_ENV)
    result = await soak.soak(server, duration=8, sessions=16, warmup=4, sample=4, seed=7)
    problems = soak.leaks(result, rss_slack_mib=64)  # RSS is the long run's business
    assert not problems, problems
    assert not result["failed"], result["failure_examples"]
    assert result["completed_total"] > 100


@pytest.mark.soak
@pytest.mark.timeout(900)  # a 600 s run: setup.cfg's 120 s per test would end it
def test_soak_ten_minutes(tmp_path: Path) -> None:
    soak = _soak_module()
    assert soak.main(["--duration", "600", "--json", str(tmp_path / "soak.json")]) == 0


# --- reconnect after a network blip (browser) -----------------------------------------


class BlipProxy:
    """A TCP proxy in front of hypercorn whose connections can all be reset at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass  # the blip, or the peer went away
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    def blip(self) -> int:
        """Reset every connection, both ways (what a dropped NAT entry looks like)."""
        count = 0
        for writer in list(self.writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            count += 1
        self.writers.clear()
        return count

    async def close(self) -> None:
        self.blip()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest_asyncio.fixture(loop_scope="session")
async def proxied(serve_app: Any, request: pytest.FixtureRequest
                  ) -> AsyncIterator[tuple[Any, BlipProxy]]:
    resume = getattr(request, "param", "30")  # websocket_resume_timeout
    server = serve_app(APP, env={"REL_DEBUG": "1", "REL_TICK": "0.1",
                                 "REL_RESUME_TIMEOUT": resume})
    proxy = BlipProxy(server.port)
    await proxy.start()
    yield server, proxy
    await proxy.close()


TICKS_ABOVE = "n => Number(document.getElementById('tick')?.textContent) > n"
TICK_LOG = """() => {
    window.__ticks = [];
    const node = document.getElementById("tick");
    new MutationObserver(() => window.__ticks.push(Number(node.textContent)))
        .observe(node, {childList: true, characterData: true, subtree: true});
}"""


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
async def test_a_network_blip_loses_nothing(proxied: tuple[Any, BlipProxy], page: Page) -> None:
    """With resume (the default): the worker comes back on a new socket and the
    session carries on. Nothing restarts, nothing fails, nothing is missed."""
    server, proxy = proxied
    url = f"http://127.0.0.1:{proxy.port}/"
    second = await open_page(page.context)
    tabs = {}
    for tab in (page, second):
        await tab.goto(url)
        await tab.wait_for_function(TICKS_ABOVE, arg=2)
        tabs[await tab.inner_text("#renderer")] = tab
    await page.evaluate(TICK_LOG)
    await page.click("#slow-btn")
    await rc.wait_stats(server, lambda s: s["counters"].get("slow_started") == 1,
                        what="the slow callback running")
    assert proxy.blip() > 0
    await page.wait_for_function(TICKS_ABOVE, arg=int(await page.inner_text("#tick")) + 5)
    settled = await rc.astats(server)
    assert settled["persistent_starts"] == {rid: 1 for rid in tabs}  # nothing restarted
    assert settled["counters"].get("slow_cleanup", 0) == 0  # the slow callback runs on
    assert settled["sessions"] == 1
    ticks: list[int] = await page.evaluate("window.__ticks")
    # Strictly increasing: no restart from 1, no value twice (a value pushed
    # while the socket was down may be superseded by the next: coalesced).
    assert all(b > a for a, b in itertools.pairwise(ticks)), ticks
    assert await page.query_selector(".test-devtools-error-count") is None
    assert not any("connection lost" in e for e in page.console_errors)  # type: ignore[attr-defined]


@pytest.mark.browser
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("proxied", ["0"], indirect=True)
async def test_without_resume_a_blip_is_reported_and_restarts(proxied: tuple[Any, BlipProxy],
                                                              page: Page) -> None:
    """websocket_resume_timeout=0: the session ends with its socket. The
    loss is explicit: in-flight callbacks fail, persistent ones restart once."""
    server, proxy = proxied
    url = f"http://127.0.0.1:{proxy.port}/"
    second = await open_page(page.context)
    tabs = {}
    for tab in (page, second):
        await tab.goto(url)
        await tab.wait_for_function(TICKS_ABOVE, arg=2)
        tabs[await tab.inner_text("#renderer")] = tab
    assert len(tabs) == 2
    await page.evaluate(TICK_LOG)
    # Tab 1 starts a long callback; it is mid-flight when the network drops.
    await page.click("#slow-btn")
    before = await rc.wait_stats(server, lambda s: s["counters"].get("slow_started") == 1,
                                 what="the slow callback running")
    assert before["persistent_starts"] == {rid: 1 for rid in tabs}
    assert proxy.blip() > 0

    # Each tab's persistent callback runs again, exactly once.
    after = await rc.wait_stats(
        server, lambda s: s["persistent_starts"] == {rid: 2 for rid in tabs}
        and s["persistent_live"] == {rid: 1 for rid in tabs} and s["sessions"] == 1,
        timeout=15, what="persistent callbacks restarted once per tab")
    assert after["counters"]["slow_cleanup"] == 1  # the old run was cancelled, not leaked
    for tab in tabs.values():
        await tab.wait_for_function(TICKS_ABOVE, arg=3)
    await asyncio.sleep(1.0)  # the renderer re-triggers its persistent callbacks: no 2nd run
    settled = await rc.astats(server)
    assert settled["persistent_starts"] == {rid: 2 for rid in tabs}
    assert settled["persistent_live"] == {rid: 1 for rid in tabs}

    # The mid-flight callback was reported to its tab as failed (dev tools show
    # the error), not left pending: the other tab has no error.
    await page.wait_for_selector(".test-devtools-error-count", timeout=10_000)
    assert await second.query_selector(".test-devtools-error-count") is None
    assert await page.inner_text(".test-devtools-error-count") == "1"
    # The renderer turned the worker's error response into the callback's error.
    assert any("Error: connection lost" in e for e in page.console_errors)  # type: ignore[attr-defined]
    assert not any("connection lost" in e for e in second.console_errors)  # type: ignore[attr-defined]

    # No duplicate pushes from a stale instance: one counter restart (the blip),
    # strictly increasing after it.
    ticks: list[int] = await page.evaluate("window.__ticks")
    drops = [i for i in range(1, len(ticks)) if ticks[i] < ticks[i - 1]]
    assert len(drops) == 1, ticks
    fresh = ticks[drops[0]:]
    assert fresh == sorted(set(fresh)) and len(fresh) >= 3, ticks
