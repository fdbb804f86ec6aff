"""Chromium smoke test on each server: the same page, served by hypercorn, uvicorn, granian.

The page loads, its persistent callback ticks, a WebSocket callback answers
and streams ``set_props`` pushes, ``get_prop`` reads the page, an HTTP
callback answers, and the browser logs no error.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.apps import rel_client as rc
from tests.helpers import SERVERS, assert_no_console_errors, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TICKS_ABOVE = "n => Number(document.getElementById('tick')?.textContent) > n"
LIVE_ABOVE = "n => Number(document.getElementById('stream-live')?.textContent) > n"


@pytest.mark.parametrize("server_name", SERVERS)
async def test_the_page_works_on_each_server(serve_app: Any, page: Page,
                                             server_name: str) -> None:
    server = serve_app("tests.apps.rel_app:asgi", server=server_name)
    await page.goto(server.url)
    await page.wait_for_function(TICKS_ABOVE, arg=3)  # the persistent callback ticks

    await page.fill("#echo-in", "hello")
    await page.click("#echo-btn")  # a WebSocket callback's response
    await expect(page.locator("#echo-out")).to_have_text("1:hello")

    await page.click("#stream-btn")  # pushes while it runs
    await page.wait_for_function(LIVE_ABOVE, arg=20)

    await page.click("#gp-btn")  # get_prop: the server asks the page
    await expect(page.locator("#gp-out")).to_have_text("got initial")

    await page.click("#http-btn")  # an HTTP callback, through the same server
    await expect(page.locator("#http-out")).to_have_text("http 1")

    stats = await rc.astats(server)
    assert stats["sessions"] == 1 and len(stats["persistent_live"]) == 1, stats
    await save_screenshot(page, f"smoke-{server_name}")
    assert_no_console_errors(page)
