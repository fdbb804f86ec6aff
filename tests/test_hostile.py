"""Hostile clients: the holes a hostile-input review found, each closed.

Real hypercorn serving tests/apps/rel_app.py, real WebSocket clients (and a
hand-made one that stops reading). After every attack a *bystander* session
on the same worker is still streaming, and the server's task count, queued
bytes and retained bytes are back at their baseline.

The numbered items follow the review (docs/security.md, docs/reliability.md):
1 reflected XSS in error pages, 3 per-connection byte budgets, 4 flood
limit bypasses, 5 the size limit in bytes, 6 heartbeat-only idlers, 7 HTTP
bad input, 8 host allow-list and the server's own message limit. Item 2
(set_props of code-running props) is tested in tests/test_sanitize.py and, in
Chromium, in tests/test_security.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.apps import rel_client as rc
from tests.helpers import REPO_ROOT, free_port, http_request, port_accepts, wait_until

APP = "tests.apps.rel_app:asgi"
MARKER = "<svg/onload=alert(document.domain)>"


@pytest.fixture
def server(serve_app_session: Any) -> Any:
    return serve_app_session(APP)


@pytest_asyncio.fixture
async def bystander(server: Any) -> AsyncIterator[rc.Bystander]:
    guard = await rc.Bystander.join(server)
    yield guard
    await guard.leave()


async def baseline(server: Any) -> dict[str, Any]:
    """The server at rest (with the bystander connected)."""
    await asyncio.sleep(0.2)
    return await rc.astats(server)


async def back_to(server: Any, before: dict[str, Any], timeout: float = 10.0) -> None:
    """Tasks, sessions and bytes held return to what they were before the attack."""
    def settled(now: dict[str, Any]) -> bool:
        return (now["sessions"] == before["sessions"] and now["tasks"] <= before["tasks"]
                and now["queued_bytes"] <= before["queued_bytes"]
                and now["retained_bytes"] <= before["retained_bytes"]
                and now["pending_props"] == before["pending_props"])
    await rc.wait_stats(server, settled, timeout=timeout, what=f"the baseline {before}")


def request(server: Any, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> Any:
    return http_request(method, server.http_url(path), body, timeout=10,
                        headers={"Content-Type": "application/json", **(headers or {})})


# --- 1. no response reflects request data as HTML ----------------------------------------

QUOTED = urllib.parse.quote(MARKER, safe="")
REFLECTION_PROBES: dict[str, tuple[str, str, bytes | None]] = {
    "unknown component-suites file": ("GET", f"/_dash-component-suites/dash/{QUOTED}.js", None),
    "unknown component-suites package": ("GET", f"/_dash-component-suites/{QUOTED}/x.js", None),
    "fingerprinted unknown file": ("GET", f"/_dash-component-suites/dash/{QUOTED}.v1m1.js", None),
    "unknown asset": ("GET", f"/assets/{QUOTED}", None),
    "unknown callback id": ("POST", "/_dash-update-component", json.dumps(
        {"output": MARKER, "inputs": [], "state": []}).encode()),
    "body not JSON": ("POST", "/_dash-update-component", MARKER.encode()),
    "inputs not matching": ("POST", "/_dash-update-component", json.dumps(
        {"output": "http-out.children", "inputs": [{"id": MARKER, "property": MARKER}] * 3,
         "state": []}).encode()),
    "wrong method": ("DELETE", f"/_dash-layout?{QUOTED}", None),
    "the page, at any path": ("GET", f"/{QUOTED}?{QUOTED}", None),
}


@pytest.mark.parametrize("method, path, body", REFLECTION_PROBES.values(),
                         ids=REFLECTION_PROBES.keys())
async def test_error_answers_never_reflect_the_request(server: Any, method: str, path: str,
                                                       body: bytes | None) -> None:
    response = await asyncio.to_thread(request, server, method, path, body)
    assert "onload" not in response.text and "<svg" not in response.text, response.text
    if response.status == 200:  # Dash's catch-all: the app's page, whatever the path
        return
    assert response.status >= 400, response
    content_type = response.header("Content-Type")
    if response.status != 404 or "component-suites" in path:
        # Our own error answers: plain text the browser may not sniff as HTML.
        assert content_type.startswith("text/plain"), (content_type, response.text)
        assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.status < 500, response.text


async def test_unknown_callback_answer_does_not_echo_the_id(server: Any) -> None:
    body = json.dumps({"output": "secret-id-7f3.children", "inputs": [], "state": []})
    response = await asyncio.to_thread(request, server, "POST", "/_dash-update-component",
                                       body.encode())
    assert response.status == 400
    assert "secret-id-7f3" not in response.text


async def test_close_reasons_do_not_echo_the_origin(server: Any) -> None:
    ws = await rc.open_ws(server, origin="http://evil-7f3.example")
    assert await rc.wait_closed(ws) == 4001
    assert ws.close_reason == "Origin not allowed"


# --- 3. per-connection stores are bounded in bytes --------------------------------------

async def test_rerequests_of_a_running_persistent_callback_keep_one_id(
        server: Any, bystander: rc.Bystander) -> None:
    before = await baseline(server)
    persistent = rc.persistent_id(server)
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.joined("r1"))
    padding = ["x" * 40_000]  # each request carries 40 KB the server must not keep
    ids = [f"{i:03d}" + "i" * 200 for i in range(150)]
    for request_id in ids:
        message = rc.request(persistent, renderer="r1", request_id=request_id)
        message["payload"]["changedPropIds"] = padding
        await rc.send(ws, message)
    # Every superseded request is answered at once; only the newest waits.
    answered = set()
    while len(answered) < len(ids) - 1:
        reply = await rc.recv_until(ws, rc.of_type("callback_response"))
        assert reply["payload"] == {"status": "prevent_update"}, reply
        answered.add(reply["requestId"])
    assert answered == set(ids[:-1])
    now = await rc.astats(server)
    kept = now["retained_bytes"] - before["retained_bytes"]
    assert kept < 2_000, f"the session keeps {kept} bytes of 150 re-requests"
    await rc.expect_alive(ws, "r1", "still-serving")
    await ws.close()
    await back_to(server, before)


async def test_error_replies_quote_only_a_short_prefix(server: Any,
                                                        bystander: rc.Bystander) -> None:
    ws = await rc.open_ws(server)
    huge = "z" * 30_000
    await rc.send(ws, {"type": huge})
    error = await rc.recv_until(ws, rc.of_type("error"))
    assert len(json.dumps(error)) < 300, len(json.dumps(error))
    await rc.send(ws, rc.request(huge + ".children", renderer="r1", request_id="u1"))
    refused = await rc.recv_until(ws, rc.of_type("callback_response", "u1"))
    assert refused["payload"]["code"] == "unknown_callback"
    assert len(json.dumps(refused)) < 300
    # Ids the server would keep are bounded too.
    await rc.send(ws, rc.echo("r1", "q" * 300))
    error = await rc.recv_until(ws, rc.of_type("error"))
    assert error["payload"]["code"] == "bad_message" and "256" in error["payload"]["message"]
    await ws.close()


@pytest.fixture
def tight_server(serve_app_session: Any) -> Any:
    """Small byte budgets and a generous flood limit: only the budgets can stop a client."""
    return serve_app_session(APP, env={
        "REL_MAX_PENDING_BYTES": str(256 * 1024), "REL_MAX_RETAINED_BYTES": str(200_000),
        "REL_MAX_MPS": "20000", "REL_MAX_BATCH": "100", "REL_MAX_MESSAGE_SIZE": "131072"})


async def test_a_client_that_sends_but_never_reads_is_closed(tight_server: Any) -> None:
    server = tight_server
    guard = await rc.Bystander.join(server)
    before = await baseline(server)
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, server, rcvbuf=4096)
    # 100 bad messages a frame, each earning an error reply it never reads;
    # 150 frames a second stays under the flood limit (20,000 messages/s).
    garbage = json.dumps([{"type": "garbage" * 5}] * 100)

    def attack() -> tuple[float, int]:
        started = checked = time.monotonic()
        sent = 0
        while time.monotonic() - started < 20:
            try:
                raw.send_text(garbage)
            except OSError:  # the server closed on us
                break
            sent += 1
            time.sleep(1 / 150)
            if time.monotonic() - checked > 0.5:
                checked = time.monotonic()
                if rc.stats(server)["close_codes"].get("4009"):
                    break
        return time.monotonic() - started, sent

    took = await asyncio.to_thread(attack)
    # Closed for its queued bytes (the close frame waits in a socket the client
    # does not read; the server gives up on delivering it after 2 s).
    now = await rc.wait_stats(server, lambda s: s["close_codes"].get("4009"), timeout=10,
                              what=f"a 4009 close after {took}")
    grown = now["rss"] - before["rss"]
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    raw.close()
    await guard.check()
    await back_to(server, before)
    await guard.leave()


async def test_what_the_connection_keeps_of_the_client_is_bounded(tight_server: Any) -> None:
    server = tight_server
    guard = await rc.Bystander.join(server)
    before = await baseline(server)
    ws = await rc.open_ws(server)
    padding = ["p" * 60_000]
    for i in range(5):  # slow callbacks that each keep a 60 KB request: the 4th is too much
        message = rc.click("slow-btn", "slow-out.children", renderer="r1", request_id=f"s{i}")
        message["payload"]["changedPropIds"] = padding
        await rc.send(ws, message)
    assert await rc.wait_closed(ws) == 4010
    await guard.check()
    await back_to(server, before)
    await guard.leave()


# --- 4. every inbound message spends a rate token ----------------------------------------

FLOODS: dict[str, Callable[[int], Any]] = {
    "frames that are not JSON": lambda i: "not json",
    "invalid messages": lambda i: {"type": "nope"},
    "invalid messages in batches": lambda i: [{"type": "nope"}] * 10,
    "unsolicited get_props answers": lambda i: {
        "type": "get_props_response", "rendererId": "r1", "requestId": f"p{i}", "payload": {}},
}


@pytest.mark.parametrize("make", FLOODS.values(), ids=FLOODS.keys())
async def test_garbage_floods_are_closed_4008(server: Any, bystander: rc.Bystander,
                                              make: Callable[[int], Any]) -> None:
    before = await baseline(server)
    ws = await rc.open_ws(server)
    replies = 0
    code = None

    async def count_replies() -> None:
        nonlocal replies, code
        try:
            while True:
                replies += len(rc.split(await ws.recv()))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None

    reader = asyncio.create_task(count_replies())
    try:
        for i in range(2000):
            await rc.send(ws, make(i))
    except ConnectionClosed:
        pass
    await asyncio.wait_for(reader, timeout=10)
    assert code == 4008
    # The burst is 400 tokens (rel_app: 200/s): the flood got no more answers than that.
    assert replies <= 450, replies
    await back_to(server, before)


# --- 5. the size limit counts bytes ------------------------------------------------------

async def test_frame_size_is_counted_in_bytes(server: Any, bystander: rc.Bystander) -> None:
    ws = await rc.open_ws(server)
    # 20,000 characters, 80,000 bytes in UTF-8: over the app's 64 KiB.
    await rc.send(ws, json.dumps({"type": "heartbeat", "pad": "\U0001f600" * 20_000},
                                 ensure_ascii=False))
    assert await rc.wait_closed(ws) == 1008


async def test_a_frame_within_the_limit_in_bytes_passes(server: Any) -> None:
    ws = await rc.open_ws(server)
    await rc.send(ws, json.dumps({"type": "heartbeat", "pad": "\u00e9" * 20_000},
                                 ensure_ascii=False))  # 40,000 bytes
    ack = await rc.recv_until(ws, rc.of_type("heartbeat_ack"))
    assert ack == {"type": "heartbeat_ack"}
    await ws.close()


# --- 6. heartbeats alone do not keep a session alive ------------------------------------

async def test_heartbeats_alone_do_not_keep_a_session_alive(serve_app_session: Any) -> None:
    server = serve_app_session(APP, env={"REL_INACTIVITY_MS": "1500"})
    ws = await rc.open_ws(server)
    started = time.monotonic()

    async def beat() -> None:
        while True:
            await rc.send(ws, {"type": "heartbeat"})
            await asyncio.sleep(0.3)

    beating = asyncio.create_task(beat())
    try:
        assert await rc.wait_closed(ws, timeout=6) == 4001
    finally:
        beating.cancel()
    assert ws.close_reason == "Inactivity timeout"
    assert time.monotonic() - started < 4


# --- 7. HTTP bad input: 400 with a fixed reason, never 500 or an echo --------------------

HTTP_ONLY = {"output": "http-out.children",
             "outputs": {"id": "http-out", "property": "children"},
             "inputs": [{"id": "http-btn", "property": "n_clicks", "value": 1}],
             "changedPropIds": ["http-btn.n_clicks"], "state": []}

BAD_BODIES: dict[str, bytes] = {
    "too many inputs": json.dumps({**HTTP_ONLY, "inputs": HTTP_ONLY["inputs"] * 2}).encode(),
    "no inputs": json.dumps({**HTTP_ONLY, "inputs": []}).encode(),
    "an input without a property": json.dumps(
        {**HTTP_ONLY, "inputs": [{"id": "http-btn"}]}).encode(),
    "state given to a callback without": json.dumps(
        {**HTTP_ONLY, "state": [{"id": "x", "property": "y"}]}).encode(),
    "outputs not a list or object": json.dumps({**HTTP_ONLY, "outputs": 7}).encode(),
    "nested 100,000 levels": b"[" * 100_000 + b"]" * 100_000,
    "nested object": b'{"output": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "an id nested 900 levels": b'{"output": "http-out.children", "inputs": [{"id": '
        + b'{"a": ' * 900 + b"1" + b"}" * 900 + b', "property": "n_clicks"}]}',
    "not an object": b"[1, 2, 3]",
    "no output": json.dumps({"inputs": []}).encode(),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_http_bad_input_is_a_400(server: Any, bystander: rc.Bystander, body: bytes) -> None:
    response = await asyncio.to_thread(request, server, "POST", "/_dash-update-component", body)
    assert response.status == 400, (response.status, response.text[:300])
    assert response.header("Content-Type").startswith("text/plain")
    assert len(response.body) < 200


async def test_http_good_input_still_works(server: Any) -> None:
    response = await asyncio.to_thread(request, server, "POST", "/_dash-update-component",
                                       json.dumps(HTTP_ONLY).encode())
    assert response.status == 200, response.text
    assert json.loads(response.body)["response"]["http-out"]["children"] == "http 1"


# --- 8. DNS rebinding: an allow-list of hosts; the server's own message limit -----------

@pytest.fixture
def hosts_server(serve_app_session: Any) -> Any:
    return serve_app_session(APP, env={"REL_ALLOWED_HOSTS": "127.0.0.1,app.example"},
                             ready_path="/_rel/stats")


@pytest.mark.parametrize("host, allowed", [
    ("app.example", True), ("127.0.0.1", True), ("APP.example.", True),
    ("rebound.attacker.example", False), ("app.example.attacker.example", False)])
async def test_only_allowed_hosts_are_served(hosts_server: Any, host: str, allowed: bool) -> None:
    port = hosts_server.port
    response = await asyncio.to_thread(request, hosts_server, "GET", "/",
                                       headers={"Host": f"{host}:{port}"})
    if allowed:
        assert response.status == 200
        return
    assert response.status == 400 and response.text == "Bad Request: host not allowed"
    # The socket too, even from a page "of the same origin" as the rebound name.
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, hosts_server,
                                  origin=f"http://{host}:{port}", host=f"{host}:{port}")
    try:
        assert await asyncio.to_thread(raw.read_close) == (4001, "Host not allowed")
    finally:
        raw.close()


async def test_app_run_gives_hypercorn_the_apps_message_limit(tmp_path: Any) -> None:
    """``app.run()`` configures hypercorn's own limit: an oversized message stops
    in the server (1009) instead of being assembled up to hypercorn's 16 MiB."""
    port = free_port()
    script = tmp_path / "run_app.py"
    script.write_text(textwrap.dedent(f"""
        from dash import html
        from quartdash import Dash
        app = Dash(__name__, websocket_callbacks=True, websocket_max_message_size=65536,
                   websocket_allow_missing_origin=True)
        app.layout = html.Div("x")
        app.run(host="127.0.0.1", port={port})
    """))
    proc = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, str(script)], cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.to_thread(wait_until, lambda: port_accepts(port), timeout=20,
                                message="app.run() to listen")
        ws: ClientConnection = await rc.connect_url(f"ws://127.0.0.1:{port}/_dash-ws-callback")
        await ws.send("x" * 200_000)
        try:
            await asyncio.wait_for(ws.recv(), timeout=5)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
        else:
            raise AssertionError("the oversized message was answered")
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)


# --- a second review: what was still not bounded -----------------------------------------

def nested(size: int) -> str:
    """About ``size`` characters of ``[[[...]]]``: the most parse work per byte."""
    depth = 200
    one = "[" * depth + "]" * depth
    return ",".join([one] * max(1, size // (len(one) + 1)))


async def test_parse_work_per_second_is_throttled(server: Any, bystander: rc.Bystander) -> None:
    """A frame's parse work is charged by size and nesting: a client sending
    60 KB frames of nested lists (each weighing ~2 MB) is read at the
    server's pace, not its own, and other sessions keep their latency."""
    ws = await rc.open_ws(server)
    frame = '{"type": "heartbeat", "pad": [' + nested(60_000) + "]}"
    acks = 0

    async def count() -> None:
        nonlocal acks
        with contextlib.suppress(ConnectionClosed):
            while True:
                acks += sum(1 for m in rc.split(await ws.recv()) if m["type"] == "heartbeat_ack")

    reader = asyncio.create_task(count())
    started = time.monotonic()
    sending = asyncio.create_task(_send_for(ws, frame, seconds=3.0))
    await asyncio.sleep(1.0)
    echo_started = time.monotonic()
    await bystander.check()
    bystander_took = time.monotonic() - echo_started
    await sending
    elapsed = time.monotonic() - started
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    # 8 MiB/s of weighted bytes, a burst of 16 MiB: about 4 frames a second and
    # 8 at once of these ~2 MB frames; unthrottled, it answers hundreds.
    assert acks <= 8 + 5 * elapsed, (acks, elapsed)
    assert bystander_took < 2.0, bystander_took
    await ws.close()


async def _send_for(ws: ClientConnection, frame: str, seconds: float) -> None:
    """Send ``frame`` over and over for ``seconds`` (a send that blocks because
    the server reads slowly is the throttle at work)."""
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                await ws.send(frame)


async def test_the_retained_budget_counts_parsed_memory(tight_server: Any) -> None:
    """60 KB of nested lists is ~2 MB once parsed: over a 200 KB budget, though
    its JSON is not."""
    server = tight_server
    ws = await rc.open_ws(server)
    message = rc.click("slow-btn", "slow-out.children", renderer="r1", request_id="s1")
    message["payload"]["changedPropIds"] = [nested(60_000)]
    await rc.send(ws, message)
    assert await rc.wait_closed(ws) == 4010


async def test_a_closed_session_does_not_linger(serve_app_session: Any) -> None:
    """After the server's close frame, a client that never answers it and
    keeps sending loses the socket within CLOSE_TIMEOUT (5 s) in all."""
    server = serve_app_session(APP, env={"REL_INACTIVITY_MS": "1000"})
    raw = await asyncio.to_thread(rc.RawWebSocket.connect, server)

    def keep_talking() -> float:
        code, _ = raw.read_close(timeout=5)
        assert code == 4001  # the inactivity close
        closed_at = time.monotonic()
        while time.monotonic() - closed_at < 15:
            try:
                raw.send_text('{"type": "heartbeat"}')
                raw.sock.settimeout(0.5)
                if raw.sock.recv(1 << 16) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        return time.monotonic() - closed_at

    try:
        lasted = await asyncio.to_thread(keep_talking)
    finally:
        raw.close()
    assert lasted < 8, f"the closed socket stayed open {lasted:.1f} s"


async def test_one_connection_gets_a_share_of_the_thread_pool(server: Any) -> None:
    """Eight blocking ``def`` callbacks from one connection hold at most a third
    of the pool: another user's quick ``def`` callback does not wait for them."""
    attacker = await rc.open_ws(server)
    for i in range(8):
        await rc.send(attacker, rc.click("blocking-btn", "blocking-out.children",
                                         renderer="a", request_id=f"b{i}"))
    await asyncio.sleep(0.3)  # the blocking callbacks have taken their threads
    victim = await rc.open_ws(server)
    started = time.monotonic()
    await rc.send(victim, rc.click("quick-btn", "quick-out.children", request_id="q1"))
    reply = await rc.recv_until(victim, rc.of_type("callback_response", "q1"))
    took = time.monotonic() - started
    assert reply["payload"]["status"] == "ok"
    assert took < 0.7, f"a quick def callback waited {took:.2f} s for the pool"
    await victim.close()
    await attacker.close()


async def test_only_the_asked_tab_answers_for_free(server: Any,
                                                    bystander: rc.Bystander) -> None:
    """An answer is free once, from the tab asked: copies, and answers from
    another tab (which leave the question open), spend tokens like any message."""
    ws = await rc.open_ws(server)
    await rc.send(ws, rc.click("gp-btn", "gp-out.children", renderer="r1", request_id="g1"))
    ask = await rc.recv_until(ws, rc.of_type("get_props_request"))
    answer = {"type": "get_props_response", "rendererId": "other",
              "requestId": ask["requestId"], "payload": {"value": "v"}}
    with contextlib.suppress(ConnectionClosed):
        for _ in range(25):  # 500 messages, burst 400
            await rc.send(ws, [answer] * 20)
    assert await rc.wait_closed(ws) == 4008


WRONG_OUTPUTS: dict[str, Any] = {
    "two outputs for one": [{"id": "echo-out", "property": "children"}] * 2,
    "none": [],
    "another property": {"id": "echo-out", "property": "style"},
    "another component": {"id": "elsewhere", "property": "children"},
    "a pattern id for a plain one": {"id": {"a": 1}, "property": "children"},
    "missing": None,
}


@pytest.mark.parametrize("outputs", WRONG_OUTPUTS.values(), ids=WRONG_OUTPUTS.keys())
async def test_outputs_that_do_not_fit_are_refused_before_the_callback_runs(
        server: Any, outputs: Any) -> None:
    before = (await rc.astats(server))["counters"].get("echo", 0)
    ws = await rc.open_ws(server)
    message = rc.echo("r1", "o1")
    if outputs is None:
        del message["payload"]["outputs"]
    else:
        message["payload"]["outputs"] = outputs
    await rc.send(ws, message)
    reply = await rc.recv_until(ws, rc.of_type("callback_response", "o1"))
    assert reply["payload"]["code"] == "bad_message", reply
    body = {k: v for k, v in message["payload"].items()}
    response = await asyncio.to_thread(request, server, "POST", "/_dash-update-component",
                                       json.dumps(body).encode())
    assert response.status == 400, response.text
    assert (await rc.astats(server))["counters"].get("echo", 0) == before  # never ran
    await ws.close()


async def test_no_op_messages_do_not_keep_a_session_alive(serve_app_session: Any) -> None:
    server = serve_app_session(APP, env={"REL_INACTIVITY_MS": "1500"})
    ws = await rc.open_ws(server)

    async def leave_nothing() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await rc.send(ws, {"type": "renderer_left", "rendererId": "nobody"})
                await asyncio.sleep(0.3)

    noise = asyncio.create_task(leave_nothing())
    try:
        assert await rc.wait_closed(ws, timeout=6) == 4001
    finally:
        noise.cancel()
        await asyncio.gather(noise, return_exceptions=True)


async def test_a_new_tab_pays_for_the_callbacks_it_starts(serve_app_session: Any) -> None:
    """rel_app starts one persistent callback per tab: joining costs 2 tokens."""
    server = serve_app_session(APP, env={"REL_MAX_MPS": "10", "REL_MAX_RENDERERS": "64"})
    ws = await rc.open_ws(server)
    await rc.send(ws, [rc.joined(f"t{i}") for i in range(15)])  # 30 tokens, burst 20
    assert await rc.wait_closed(ws) == 4008


@pytest.mark.parametrize("body", [b"[1, 2]", b'"x"', b'{"n_clicks": 1, "extra": 2}',
                                  b'{"wrong": 1}'])
async def test_api_endpoints_answer_bad_bodies_with_400(serve_app_session: Any,
                                                        body: bytes) -> None:
    server = serve_app_session("tests.apps.compat_api:asgi", ready_path="/early/")
    response = await asyncio.to_thread(request, server, "POST", "/late/api/half", body)
    assert response.status == 400, response.text
    good = await asyncio.to_thread(request, server, "POST", "/late/api/half",
                                   b'{"n_clicks": 3}')
    assert good.status == 200 and json.loads(good.body) == 1.5
