"""The test infrastructure itself: hypercorn subprocesses, Chromium, redis-server."""

from __future__ import annotations

import asyncio
import signal
import socket

import pytest
import websockets
from playwright.async_api import Page, expect

from tests.helpers import (
    RedisServer,
    ServerStartError,
    assert_no_console_errors,
    free_port,
    http_get,
    open_page,
    save_screenshot,
)

HELLO = "tests.apps.hello:asgi"

# Browser tests run on the session event loop, where the browser lives.
browser_test = pytest.mark.asyncio(loop_scope="session")


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ------------------------------------------------------------------ serve_app


def test_serve_app_http(serve_app) -> None:
    server = serve_app(HELLO)
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.ws_url("ws") == f"ws://127.0.0.1:{server.port}/ws"
    response = http_get(server.url + "/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="btn"' in response.text
    assert http_get(server.url + "/health").status == 200
    assert http_get(server.url + "/missing").status == 404


async def test_serve_app_websocket_echo(serve_app) -> None:
    server = serve_app(HELLO)
    async with websockets.connect(server.ws_url("/ws"), open_timeout=5, close_timeout=2) as ws:
        for text in ("hello", "ünïcødé", "x" * 10_000):
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), timeout=5) == text
        await ws.send(b"\x00\x01binary")
        assert await asyncio.wait_for(ws.recv(), timeout=5) == b"\x00\x01binary"


async def test_serve_app_stop_while_websocket_open(serve_app) -> None:
    """SIGTERM: hypercorn closes open WebSockets and exits 0 within the timeout."""
    server = serve_app(HELLO)
    async with websockets.connect(server.ws_url("/ws"), open_timeout=5, close_timeout=2) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), timeout=5) == "ping"
        exit_code = await asyncio.to_thread(server.stop, signal.SIGTERM, 10)
        assert exit_code == 0, server.output()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=5)
    # A plain Quart handler is cancelled by hypercorn's shutdown: close 1011.
    # (quartdash's own route closes with 1001 itself, see docs/protocol.md.)
    assert closed.value.rcvd is None or closed.value.rcvd.code in (1000, 1001, 1006, 1011)
    assert not server.is_running()
    assert "Running on" in server.output()


def test_serve_app_env_and_two_workers(serve_app) -> None:
    server = serve_app(HELLO, env={"HELLO_GREETING": "hi there"}, workers=2)
    assert http_get(server.url + "/env/HELLO_GREETING").text == "hi there"
    pids = {http_get(server.url + "/pid").text for _ in range(20)}
    assert pids and all(pid.isdigit() for pid in pids)
    assert server.stop() == 0, server.output()


def test_serve_app_reports_import_errors(serve_app) -> None:
    with pytest.raises(ServerStartError) as error:
        serve_app("tests.apps.does_not_exist:asgi", startup_timeout=20)
    assert "does_not_exist" in str(error.value)


def test_serve_app_session_reuses_the_server(serve_app_session) -> None:
    first = serve_app_session(HELLO)
    assert serve_app_session(HELLO) is first
    assert http_get(first.url + "/health").status == 200


# -------------------------------------------------------------------- browser


@browser_test
async def test_browser_click_changes_text(serve_app, page: Page, screenshot_dir) -> None:
    server = serve_app(HELLO)
    await page.goto(server.url + "/")
    out = page.locator("#out")
    await expect(out).to_have_text("not clicked")
    await page.click("#btn")
    await expect(out).to_have_text("clicked")
    path = await save_screenshot(page, "hello-clicked")
    assert path.parent == screenshot_dir
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_no_console_errors(page)


@browser_test
async def test_browser_collects_console_and_page_errors(serve_app_session, page: Page) -> None:
    server = serve_app_session(HELLO)
    await page.goto(server.url + "/")
    await page.evaluate("console.error('boom from console')")
    await page.evaluate("setTimeout(() => { throw new Error('boom from page'); }, 0)")
    await expect(page.locator("#out")).to_have_text("not clicked")  # let the timer fire
    for _ in range(50):
        if len(page.console_errors) >= 2:
            break
        await asyncio.sleep(0.05)
    joined = "\n".join(page.console_errors)
    assert "boom from console" in joined
    assert "boom from page" in joined
    with pytest.raises(AssertionError, match="boom"):
        assert_no_console_errors(page)
    assert_no_console_errors(page, ignore=("boom from console", "boom from page"))


@browser_test
async def test_second_tab_shares_the_context(serve_app_session, page: Page) -> None:
    server = serve_app_session(HELLO)
    await page.goto(server.url + "/")
    await page.evaluate("localStorage.setItem('k', 'v')")
    second = await open_page(page.context)
    await second.goto(server.url + "/")
    assert await second.evaluate("localStorage.getItem('k')") == "v"
    assert second.console_errors == []
    await second.close()


@browser_test
async def test_contexts_are_isolated(serve_app_session, page: Page, new_browser_context) -> None:
    server = serve_app_session(HELLO)
    await page.goto(server.url + "/")
    await page.evaluate("localStorage.setItem('k', 'v')")
    other = await open_page(await new_browser_context())
    await other.goto(server.url + "/")
    assert await other.evaluate("localStorage.getItem('k')") is None


# ---------------------------------------------------------------------- redis


def test_redis_ping_kill_restart(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"
    assert redis_server.ping()
    client = redis_server.client()
    try:
        client.set("key", "value")
        assert client.get("key") == b"value"
    finally:
        client.close()
    port = redis_server.port
    redis_server.kill()
    assert not redis_server.ping()
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.ping()
    client = redis_server.client()
    try:
        assert client.get("key") is None  # no persistence
    finally:
        client.close()


def test_redis_server_is_revived_for_the_next_test(redis_server: RedisServer) -> None:
    redis_server.kill()  # the fixture restarts it for whoever needs it next


def test_redis_server_was_revived(redis_server: RedisServer) -> None:
    assert redis_server.ping()
