"""Streaming callbacks, get_prop(path=), events and re-triggering in headless Chromium.

tests/apps/live_app.py under hypercorn, with dash-renderer 4.4, quartdash's
SharedWorker and page helper: what a user sees. The protocol-level versions
are in tests/test_live_features.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page

from tests.helpers import ServerProcess, assert_no_console_errors, http_get, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

APP = "tests.apps.live_app:asgi"
WS_CONNECTED = "[Dash] WebSocket connected"


@pytest.fixture
def server(serve_app_session: Any) -> ServerProcess:
    return serve_app_session(APP, env={"LIVE_SLOW": "1.0"}, ready_path="/_live/stats")


async def open_app(page: Page, server: ServerProcess) -> None:
    def connected(message: ConsoleMessage) -> bool:
        return WS_CONNECTED in message.text

    async with page.expect_console_message(connected, timeout=15_000):
        await page.goto(server.url + "/")
    await page.wait_for_selector("#grid .ag-row", timeout=15_000)


async def stats(server: ServerProcess) -> dict[str, Any]:
    response = await asyncio.to_thread(http_get, server.http_url("/_live/stats"), timeout=5)
    assert response.status == 200, response.text
    return json.loads(response.body)


# Every distinct text an element shows, recorded in the page on each mutation.
RECORD = """(selector) => {
  const el = document.querySelector(selector);
  const seen = window.__seen = window.__seen || {};
  seen[selector] = [el.textContent];
  new MutationObserver(() => {
    const list = seen[selector];
    if (list[list.length - 1] !== el.textContent) list.push(el.textContent);
  }).observe(el, {childList: true, subtree: true, characterData: true});
}"""


async def test_a_chat_answer_streams_token_by_token(server: ServerProcess, page: Page) -> None:
    await open_app(page, server)
    await page.fill("#prompt", "what is quartdash")
    await page.evaluate(RECORD, "#answer")
    await page.click("#ask")
    await page.wait_for_function(
        "document.querySelector('#answer-status').textContent === 'done'", timeout=10_000)
    final = "The answer to 'what is quartdash' is streamed one token at a time."
    assert await page.text_content("#answer") == final
    seen = await page.evaluate("window.__seen['#answer']")
    # The page showed the answer growing, one token at a time (a browser may
    # paint two tokens at once, but never all of them at once).
    growing = [text for text in seen if text]
    assert len(growing) >= 8 and growing[-1] == final
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(growing))
    # The callback's response did not apply the last Patch a second time.
    await asyncio.sleep(0.3)
    assert await page.text_content("#answer") == final
    await page.click("#ask")  # again: starts from "" (the first yield replaces)
    await page.wait_for_function(
        "document.querySelector('#answer-status').textContent === 'thinking'", timeout=5_000)
    await page.wait_for_function(
        "document.querySelector('#answer-status').textContent === 'done'", timeout=10_000)
    assert await page.text_content("#answer") == final
    await save_screenshot(page, "live-chat-stream")
    assert_no_console_errors(page)


async def test_a_path_read_of_one_cell_of_a_10000_row_grid(server: ServerProcess,
                                                           page: Page) -> None:
    await open_app(page, server)
    await page.fill("#row-index", "9999")
    await page.click("#read-cell")
    await page.wait_for_function("document.querySelector('#cell').textContent !== ''")
    assert (await page.text_content("#cell") or "").startswith("12498.75 in ")
    cell_answer = (await stats(server))["response_sizes"][-1]
    assert cell_answer < 50  # the page helper sent the cell, not the 10,000 rows
    await page.click("#read-all")
    await page.wait_for_function("document.querySelector('#all').textContent !== ''",
                                 timeout=15_000)
    assert (await page.text_content("#all") or "").startswith("10000 rows in ")
    whole_answer = (await stats(server))["response_sizes"][-1]
    assert whole_answer > 300_000 > 100 * cell_answer
    # A row that does not exist reads None, as in Dash 4.5.
    await page.fill("#row-index", "10000")
    await page.click("#read-cell")
    await page.wait_for_function(
        "document.querySelector('#cell').textContent.startsWith('None in ')")
    await save_screenshot(page, "live-path-read")
    assert_no_console_errors(page)


async def test_an_event_stream_is_drawn_by_a_clientside_handler(server: ServerProcess,
                                                                page: Page) -> None:
    """1000 events a second for 10 seconds to one tab: every one reaches the
    handler, in order, and none went through the renderer."""
    await open_app(page, server)
    await page.fill("#events-rate", "1000")
    await page.fill("#events-count", "10000")
    # Count what reaches dash-renderer's store meanwhile: events must not.
    await page.evaluate("""() => {
        window.__dispatches = 0;
        window.dash_stores[0].subscribe(() => { window.__dispatches += 1; });
    }""")
    await page.click("#events-go")
    await page.wait_for_function("window.__ticks.length >= 10000", timeout=40_000,
                                 polling=250)
    ticks = await page.evaluate("window.__ticks")
    assert ticks == list(range(10000))
    assert await page.evaluate("window.__lost") == []
    await page.wait_for_function(
        "document.querySelector('#events-sent').textContent.startsWith('sent 10000')")
    sent = await page.text_content("#events-sent") or ""
    seconds = float(sent.split(" in ")[1].split(" s")[0])
    assert 9.0 <= seconds < 20 and sent.endswith(", 0 refused")
    # Drawn: the canvas has ink.
    ink = await page.evaluate("""() => {
        const c = document.getElementById('events-canvas');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i]) n++;
        return n;
    }""")
    assert ink > 1000
    assert await page.evaluate("window.__dispatches") < 100  # the callback's own, not 10,000
    await save_screenshot(page, "live-event-stream")
    assert_no_console_errors(page)


async def test_dragging_a_slider_20_times_shows_only_the_last_runs_result(
        server: ServerProcess, page: Page) -> None:
    await open_app(page, server)
    before = (await stats(server))["counters"]
    await page.evaluate(RECORD, "#slider-out")
    thumb = page.locator(".dash-slider-thumb")
    track = page.locator(".dash-slider-track")
    box, thumb_box = await track.bounding_box(), await thumb.bounding_box()
    assert box is not None and thumb_box is not None
    y = thumb_box["y"] + thumb_box["height"] / 2
    await page.mouse.move(thumb_box["x"] + thumb_box["width"] / 2, y)
    await page.mouse.down()
    for step in range(1, 21):  # 20 moves, 40 ms apart: each a new value
        await page.mouse.move(box["x"] + box["width"] * step * 0.03, y, steps=1)
        await asyncio.sleep(0.04)
    await page.mouse.up()
    final = int(await thumb.get_attribute("aria-valuenow") or -1)
    assert final > 40
    await page.wait_for_function(
        f"document.querySelector('#slider-out').textContent === 'value {final}'",
        timeout=10_000)
    await asyncio.sleep(0.5)
    after = (await stats(server))["counters"]

    def delta(name: str) -> int:
        return int(after.get(name, 0)) - int(before.get(name, 0))

    started, cancelled, finished = (delta("slider_started"), delta("slider_cancelled"),
                                    delta("slider_finished"))
    # Many runs started (the renderer merges some values itself); each one
    # was cancelled by the next, only the last one finished.
    assert started >= 10 and cancelled == started - 1 and finished == 1
    # And the page never showed an older run's result.
    assert await page.evaluate("window.__seen['#slider-out']") == ["", f"value {final}"]
    await save_screenshot(page, "live-slider-newest-wins")
    assert_no_console_errors(page)


async def test_events_over_the_budget_are_reported_to_the_page(serve_app_session: Any,
                                                               page: Page) -> None:
    """A burst larger than the event budget: the events that fit arrive in
    order, and the page's events-lost handler learns how many did not."""
    server = serve_app_session(APP, env={"LIVE_EVENT_BUDGET": "3000"},
                               ready_path="/_live/stats")
    await open_app(page, server)
    await page.click("#burst-btn")
    await page.wait_for_function(
        "document.querySelector('#burst-out').textContent.startsWith('burst of 200')")
    refused = int((await page.text_content("#burst-out") or "").split(": ")[1].split()[0])
    assert 0 < refused < 200
    await page.wait_for_function("window.__lost.length > 0")
    lost = await page.evaluate("window.__lost")
    assert lost == [{"count": refused, "total": refused}]
    ticks = await page.evaluate("window.__ticks")
    assert ticks == list(range(200 - refused))  # the ones that fit: a prefix, in order
    assert_no_console_errors(page)  # a warning, not an error
